/* libpq, loaded at run time: reeld links no PostgreSQL code, and maps libpq
 * (and the TLS, Kerberos and LDAP libraries it pulls in) only when
 * service.database.backend is postgres. The functions reel calls, by the
 * names libpq gives them without the PQ prefix. */
#ifndef REEL_PQ_API_H
#define REEL_PQ_API_H

#include <libpq-fe.h>
#include <stddef.h>

/* The Debian package libpq5's library. */
#define REEL_PQ_LIBRARY "libpq.so.5"

typedef struct {
  PGconn *(*connectdbParams)(const char *const *keywords, const char *const *values, int expand_dbname);
  ConnStatusType (*status)(const PGconn *conn);
  char *(*errorMessage)(const PGconn *conn);
  void (*finish)(PGconn *conn);
  void (*reset)(PGconn *conn);
  PGresult *(*exec)(PGconn *conn, const char *query);
  PGresult *(*prepare)(PGconn *conn, const char *name, const char *query, int n_params, const Oid *types);
  PGresult *(*execPrepared)(PGconn *conn, const char *name, int n_params, const char *const *values,
                            const int *lengths, const int *formats, int result_format);
  ExecStatusType (*resultStatus)(const PGresult *res);
  char *(*resultErrorField)(const PGresult *res, int field);
  char *(*resultErrorMessage)(const PGresult *res);
  void (*clear)(PGresult *res);
  int (*ntuples)(const PGresult *res);
  char *(*getvalue)(const PGresult *res, int row, int column);
  int (*getisnull)(const PGresult *res, int row, int column);
  char *(*cmdTuples)(PGresult *res);
  char *(*cmdStatus)(PGresult *res);
  int (*socket)(const PGconn *conn);
  int (*consumeInput)(PGconn *conn);
  PGnotify *(*notifies)(PGconn *conn);
  void (*freemem)(void *ptr);
  PQnoticeProcessor (*setNoticeProcessor)(PGconn *conn, PQnoticeProcessor proc, void *arg);
  PGTransactionStatusType (*transactionStatus)(const PGconn *conn);
  PQconninfoOption *(*conninfoParse)(const char *conninfo, char **errmsg);
  void (*conninfoFree)(PQconninfoOption *options);
  /* pipeline mode (libpq 14+): the store sends a call's statements without
   * waiting for each answer */
  int (*enterPipelineMode)(PGconn *conn);
  int (*pipelineSync)(PGconn *conn);
  int (*sendFlushRequest)(PGconn *conn);
  int (*sendQueryParams)(PGconn *conn, const char *command, int n_params, const Oid *types, const char *const *values,
                         const int *lengths, const int *formats, int result_format);
  int (*sendQueryPrepared)(PGconn *conn, const char *name, int n_params, const char *const *values,
                           const int *lengths, const int *formats, int result_format);
  PGresult *(*getResult)(PGconn *conn);
  int (*flush)(PGconn *conn);
} reel_pq_api;

/* Loads libpq once (thread-safe) and returns its functions, or NULL with a
 * message naming the Debian package in err. */
const reel_pq_api *reel_pq_load(char *err, size_t errlen);

/* Connects with the settings every reel connection uses: url (a URI or
 * key=value string; its own values win), the node's application_name, a
 * connect timeout and TCP keepalives (so a dead server is noticed), and
 * password when not NULL. Returns the connection (check its status) or NULL
 * when out of memory. A notice processor that drops notices is installed. */
PGconn *reel_pq_connect(const reel_pq_api *pq, const char *url, const char *password, const char *application_name);

#endif
