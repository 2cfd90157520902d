/* Loading libpq with dlopen (see pq_api.h for why), and the connection
 * settings shared by the store connection and the listening one. */
#include "store/pq_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static reel_pq_api api;
static int loaded;
static char load_error[300];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
  void *handle = dlopen(REEL_PQ_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    snprintf(load_error, sizeof load_error,
             "cannot load %s, which service.database.backend postgres needs (Debian package libpq5): %s",
             REEL_PQ_LIBRARY, dlerror());
    return;
  }
  struct {
    const char *name;
    void **slot;
  } symbols[] = {
      {"PQconnectdbParams", (void **)&api.connectdbParams},
      {"PQstatus", (void **)&api.status},
      {"PQerrorMessage", (void **)&api.errorMessage},
      {"PQfinish", (void **)&api.finish},
      {"PQreset", (void **)&api.reset},
      {"PQexec", (void **)&api.exec},
      {"PQprepare", (void **)&api.prepare},
      {"PQexecPrepared", (void **)&api.execPrepared},
      {"PQresultStatus", (void **)&api.resultStatus},
      {"PQresultErrorField", (void **)&api.resultErrorField},
      {"PQresultErrorMessage", (void **)&api.resultErrorMessage},
      {"PQclear", (void **)&api.clear},
      {"PQntuples", (void **)&api.ntuples},
      {"PQgetvalue", (void **)&api.getvalue},
      {"PQgetisnull", (void **)&api.getisnull},
      {"PQcmdTuples", (void **)&api.cmdTuples},
      {"PQcmdStatus", (void **)&api.cmdStatus},
      {"PQsocket", (void **)&api.socket},
      {"PQconsumeInput", (void **)&api.consumeInput},
      {"PQnotifies", (void **)&api.notifies},
      {"PQfreemem", (void **)&api.freemem},
      {"PQsetNoticeProcessor", (void **)&api.setNoticeProcessor},
      {"PQtransactionStatus", (void **)&api.transactionStatus},
      {"PQconninfoParse", (void **)&api.conninfoParse},
      {"PQconninfoFree", (void **)&api.conninfoFree},
      {"PQenterPipelineMode", (void **)&api.enterPipelineMode},
      {"PQpipelineSync", (void **)&api.pipelineSync},
      {"PQsendFlushRequest", (void **)&api.sendFlushRequest},
      {"PQsendQueryParams", (void **)&api.sendQueryParams},
      {"PQsendQueryPrepared", (void **)&api.sendQueryPrepared},
      {"PQgetResult", (void **)&api.getResult},
      {"PQflush", (void **)&api.flush},
  };
  for (size_t i = 0; i < sizeof symbols / sizeof *symbols; i++) {
    *symbols[i].slot = dlsym(handle, symbols[i].name);
    if (!*symbols[i].slot) {
      snprintf(load_error, sizeof load_error, "%s has no %s (too old a libpq)", REEL_PQ_LIBRARY, symbols[i].name);
      dlclose(handle);
      return;
    }
  }
  loaded = 1; /* the handle stays open for the life of the process */
}

const reel_pq_api *reel_pq_load(char *err, size_t errlen) {
  pthread_once(&once, load);
  if (loaded) return &api;
  snprintf(err, errlen, "%s", load_error);
  return NULL;
}

static void drop_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

PGconn *reel_pq_connect(const reel_pq_api *pq, const char *url, const char *password, const char *application_name) {
  /* later entries override earlier ones: our defaults first, then the URL
   * (expanded), then an explicit password */
  const char *keywords[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                            "keepalives_count", "application_name", "dbname", password ? "password" : NULL, NULL};
  const char *values[] = {"5", "1", "10", "5", "3", application_name ? application_name : "reeld", url, password, NULL};
  PGconn *conn = pq->connectdbParams(keywords, values, 1);
  if (conn) pq->setNoticeProcessor(conn, drop_notice, NULL);
  return conn;
}
