/* The reel application: what every API handler can reach. One instance per
 * reeld process; created in main.c. */
#ifndef REEL_APP_H
#define REEL_APP_H

#include <uv.h>

#include "config/config.h"
#include "events/hub.h"
#include "http/request.h"
#include "http/forwarded.h"
#include "http/h3_server.h"
#include "http/server.h"
#include "jobs/jobs.h"
#include "storage/storage.h"
#include "worker/scheduler.h"

typedef struct {
  uv_loop_t *loop;
  reel_config *cfg;
  reel_jobs jobs;
  reel_storage *storage;
  reel_scheduler scheduler;
  reel_event_hub events;        /* live event streams (API nodes) */
  int runs_workers;             /* this process runs jobs (mode both or worker) */
  int serves_api;               /* this process serves the jobs API (mode both or api) */
  char node_id[64];             /* service.node_id, or "<host>:<pid>" */
  reel_http_server http;
  reel_tls_context tls;         /* service.tls, loaded when an https:// or h3:// listener is configured */
  int has_tls;
  reel_h3_server *h3;           /* the h3:// listeners, or NULL */
  reel_proxy_list proxies;      /* service.trusted_proxies */
  unsigned char signing_key[32];
  unsigned char token_digests[REEL_MAX_TOKENS][32]; /* SHA-256 of each bearer token */
  int n_tokens;
  char *docs_dir;
  char listener_base_url[300]; /* the first TCP listener as a URL: the base when a request names no Host */
} reel_app;

/* Route parameters captured from the path ({id}, {name}, {asset}). */
typedef struct {
  reel_slice id;
  reel_slice name;
} reel_route_params;

/* The one entry point every protocol front end calls for a parsed request. */
void reel_api_handle(reel_http_request *req, void *app);
/* Prepares routing and auth (token digests); call once after the config is loaded. */
int reel_api_init(reel_app *app);
/* Prints every route as "METHOD PATH" lines (for `reeld --routes`). */
void reel_api_print_routes(void);

/* The storage key of a job's artifact `name` ("final_video.mp4", "captions.vtt"),
 * beside the video; NULL for an unknown name or a job without artifacts. Heap. */
char *reel_api_artifact_key(const reel_job *job, const char *name);
/* Media type of an artifact name. */
const char *reel_api_artifact_type(const char *name);

/* Handlers, declared in api/routes.h's table; each finishes req exactly once. */
void reel_api_create_job(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_list_jobs(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_get_job(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_get_artifact(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_get_logs(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_cancel_job(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_job_events(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_events(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_list_deliveries(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_download_file(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_healthz(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_readyz(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_metrics(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_openapi(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_docs(reel_app *app, reel_http_request *req, const reel_route_params *p);
void reel_api_docs_asset(reel_app *app, reel_http_request *req, const reel_route_params *p);

#endif
