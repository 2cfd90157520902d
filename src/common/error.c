/* The single table of reel error codes, rendered as names and messages. */
#include "common/error.h"

const char *reel_strerror(int err) {
  switch (err) {
  case REEL_OK: return "success";
#define REEL_ERR_MSG_(name, msg) case REEL_E##name: return msg;
    REEL_ERRNO_MAP(REEL_ERR_MSG_)
#undef REEL_ERR_MSG_
  default: return "unknown error";
  }
}

const char *reel_err_name(int err) {
  switch (err) {
  case REEL_OK: return "REEL_OK";
#define REEL_ERR_NAME_(name, msg) case REEL_E##name: return "REEL_E" #name;
    REEL_ERRNO_MAP(REEL_ERR_NAME_)
#undef REEL_ERR_NAME_
  default: return "REEL_EUNKNOWN";
  }
}
