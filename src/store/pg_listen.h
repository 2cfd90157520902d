/* One dedicated PostgreSQL connection per node that LISTENs for wake-ups
 * (new or requeued jobs, cancels; store.h's channels) and hands them to the
 * loop thread. It lives on its own thread, so a slow or dead database never
 * stalls the loop, and it reconnects by itself after the connection drops
 * (then reports a NULL channel: notifications may have been missed, so the
 * caller looks at the store again). It needs a session of its own: it cannot
 * go through a transaction-pooling PgBouncer. */
#ifndef REEL_PG_LISTEN_H
#define REEL_PG_LISTEN_H

#include <stddef.h>
#include <uv.h>

#include "store/store.h"

typedef struct reel_pg_listener reel_pg_listener;

/* Called on the loop thread for each notification, and with channel and
 * payload NULL after each (re)connection. */
typedef void (*reel_pg_notify_cb)(void *data, const char *channel, const char *payload);

/* Starts listening on both channels. Returns 0 (the first connection is made
 * in the background), or a reel error with a message in err. */
int reel_pg_listener_start(reel_pg_listener **out, uv_loop_t *loop, const reel_store_pg_settings *settings,
                           reel_pg_notify_cb cb, void *data, char *err, size_t errlen);
/* Whether the listening connection is up now (readiness, metrics). */
int reel_pg_listener_connected(const reel_pg_listener *l);
/* Stops the thread and frees l (NULL is fine); cb is not called after. */
void reel_pg_listener_stop(reel_pg_listener *l);

#endif
