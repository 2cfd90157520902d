/* placeholder while the PostgreSQL backend is written */
#include <stdio.h>
#include "common/error.h"
#include "store/store.h"
#include "store/pg_listen.h"
int reel_store_open_postgres(const reel_store_pg_settings *settings, reel_store **out, char *err, size_t errlen) {
  (void)settings; (void)out; snprintf(err, errlen, "postgres: not built yet"); return REEL_EUNSUPPORTED;
}
char *reel_store_pg_url_password(const char *url) { (void)url; return NULL; }
int reel_pg_listener_start(reel_pg_listener **out, uv_loop_t *loop, const reel_store_pg_settings *settings,
                           reel_pg_notify_cb cb, void *data, char *err, size_t errlen) {
  (void)out; (void)loop; (void)settings; (void)cb; (void)data; snprintf(err, errlen, "no"); return REEL_EUNSUPPORTED;
}
int reel_pg_listener_connected(const reel_pg_listener *l) { (void)l; return 0; }
void reel_pg_listener_stop(reel_pg_listener *l) { (void)l; }
