/* Every route reeld serves, declared once: method, path pattern, handler,
 * whether a bearer token is needed, and which nodes serve it (API: nodes in
 * service.mode api or both; ANY: every node, workers included). The router, `reeld --routes`, the metrics
 * route labels and the OpenAPI parity test all read this table. */
#ifndef REEL_ROUTES_H
#define REEL_ROUTES_H

#define REEL_ROUTE_MAP(XX)                                                    \
  XX(POST, "/v1/jobs", reel_api_create_job, 1, API)                          \
  XX(GET, "/v1/jobs", reel_api_list_jobs, 1, API)                            \
  XX(GET, "/v1/jobs/{id}", reel_api_get_job, 1, API)                         \
  XX(GET, "/v1/jobs/{id}/artifact", reel_api_get_artifact, 1, API)           \
  XX(GET, "/v1/jobs/{id}/logs", reel_api_get_logs, 1, API)                   \
  XX(POST, "/v1/jobs/{id}/cancel", reel_api_cancel_job, 1, API)              \
  XX(GET, "/v1/jobs/{id}/events", reel_api_job_events, 1, API)               \
  XX(GET, "/v1/events", reel_api_events, 1, API)                             \
  XX(GET, "/v1/webhooks/deliveries", reel_api_list_deliveries, 1, API)       \
  XX(GET, "/v1/files/{id}/{name}", reel_api_download_file, 0, API)           \
  XX(HEAD, "/v1/files/{id}/{name}", reel_api_download_file, 0, API)          \
  XX(GET, "/healthz", reel_api_healthz, 0, ANY)                              \
  XX(GET, "/readyz", reel_api_readyz, 0, ANY)                                \
  XX(GET, "/metrics", reel_api_metrics, 0, ANY)                              \
  XX(GET, "/openapi.yaml", reel_api_openapi, 0, API)                         \
  XX(GET, "/docs", reel_api_docs, 0, API)                                    \
  XX(GET, "/docs/{asset}", reel_api_docs_asset, 0, API)

#endif
