/* The listening connection (pg_listen.h): a thread that blocks in poll() on
 * the connection's socket and a wake-up pipe, queues what arrives and wakes
 * the loop through a uv_async_t. */
#include "store/pg_listen.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "store/pq_api.h"

#define MAX_QUEUED 10000      /* beyond this, notifications collapse into one "look again" */
#define RECONNECT_MS 1000

typedef struct event {
  struct event *next;
  char *channel, *payload; /* NULL: (re)connected or overflow: look at the store again */
} event;

struct reel_pg_listener {
  const reel_pq_api *pq;
  char *url, *password, *application_name;
  reel_pg_notify_cb cb;
  void *data;
  uv_async_t async;
  pthread_t thread;
  pthread_mutex_t lock;
  event *head, *tail;
  int queued, overflowed;
  int stop_pipe[2];
  _Atomic int connected;
  int stopping;
};

static void push(reel_pg_listener *l, const char *channel, const char *payload) {
  pthread_mutex_lock(&l->lock);
  if (l->queued >= MAX_QUEUED) {
    if (!l->overflowed) channel = NULL; /* one general wake-up stands for the dropped ones */
    else {
      pthread_mutex_unlock(&l->lock);
      return;
    }
    l->overflowed = 1;
  }
  event *e = calloc(1, sizeof *e);
  if (e) {
    e->channel = channel ? strdup(channel) : NULL;
    e->payload = channel && payload ? strdup(payload) : NULL;
    if (l->tail) l->tail->next = e;
    else l->head = e;
    l->tail = e;
    l->queued++;
  }
  pthread_mutex_unlock(&l->lock);
  uv_async_send(&l->async);
}

static void deliver(uv_async_t *h) {
  reel_pg_listener *l = h->data;
  pthread_mutex_lock(&l->lock);
  event *e = l->head;
  l->head = l->tail = NULL;
  l->queued = 0;
  l->overflowed = 0;
  pthread_mutex_unlock(&l->lock);
  while (e) {
    event *next = e->next;
    if (!l->stopping) l->cb(l->data, e->channel, e->payload);
    free(e->channel);
    free(e->payload);
    free(e);
    e = next;
  }
}

/* Waits up to ms for the stop pipe; returns 1 when asked to stop. */
static int wait_or_stop(reel_pg_listener *l, int ms) {
  struct pollfd p = {.fd = l->stop_pipe[0], .events = POLLIN};
  return poll(&p, 1, ms) > 0;
}

static void *thread_main(void *arg) {
  reel_pg_listener *l = arg;
  int failures = 0;
  for (;;) {
    PGconn *conn = reel_pq_connect(l->pq, l->url, l->password, l->application_name);
    PGresult *res = conn && l->pq->status(conn) == CONNECTION_OK
                        ? l->pq->exec(conn, "LISTEN " REEL_STORE_CHANNEL_JOBS "; LISTEN " REEL_STORE_CHANNEL_CANCEL
                                             "; LISTEN " REEL_STORE_CHANNEL_EVENTS)
                        : NULL;
    int ok = res && l->pq->resultStatus(res) == PGRES_COMMAND_OK;
    if (res) l->pq->clear(res);
    if (!ok) {
      if (failures++ == 0) {
        const char *why = conn ? l->pq->errorMessage(conn) : "out of memory";
        reel_log(REEL_LOG_WARN, "cannot listen for PostgreSQL notifications; retrying every second",
                 "{s:s}", "error", why);
      }
      if (conn) l->pq->finish(conn);
      if (wait_or_stop(l, RECONNECT_MS)) return NULL;
      continue;
    }
    if (failures) reel_log(REEL_LOG_INFO, "listening for PostgreSQL notifications again", NULL);
    failures = 0;
    l->connected = 1;
    push(l, NULL, NULL); /* anything sent while we were not listening was missed: look again */
    int sock = l->pq->socket(conn);
    for (;;) {
      struct pollfd p[2] = {{.fd = sock, .events = POLLIN}, {.fd = l->stop_pipe[0], .events = POLLIN}};
      int n = poll(p, 2, 10000);
      if (n < 0 && errno == EINTR) continue;
      if (p[1].revents) {
        l->connected = 0;
        l->pq->finish(conn);
        return NULL;
      }
      /* also on a timeout: consuming input notices a connection the server closed */
      if (!l->pq->consumeInput(conn) || l->pq->status(conn) != CONNECTION_OK) break;
      PGnotify *note;
      while ((note = l->pq->notifies(conn)) != NULL) {
        push(l, note->relname, note->extra);
        l->pq->freemem(note);
      }
    }
    l->connected = 0;
    reel_log(REEL_LOG_WARN, "the PostgreSQL listening connection dropped; reconnecting", "{s:s}", "error",
             l->pq->errorMessage(conn));
    l->pq->finish(conn);
    if (wait_or_stop(l, 200)) return NULL;
  }
}

static void free_listener(reel_pg_listener *l) {
  free(l->url);
  if (l->password) memset(l->password, 0, strlen(l->password));
  free(l->password);
  free(l->application_name);
  free(l);
}

int reel_pg_listener_start(reel_pg_listener **out, uv_loop_t *loop, const reel_store_pg_settings *settings,
                           reel_pg_notify_cb cb, void *data, char *err, size_t errlen) {
  const reel_pq_api *pq = reel_pq_load(err, errlen);
  if (!pq) return REEL_EUNSUPPORTED;
  reel_pg_listener *l = calloc(1, sizeof *l);
  if (!l) return REEL_ENOMEM;
  l->pq = pq;
  l->cb = cb;
  l->data = data;
  l->url = strdup(settings->url);
  l->password = settings->password ? strdup(settings->password) : NULL;
  l->application_name = strdup(settings->application_name ? settings->application_name : "reeld");
  if (!l->url || !l->application_name || (settings->password && !l->password) || pipe2(l->stop_pipe, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "cannot start listening for notifications: out of memory or descriptors");
    free_listener(l);
    return REEL_ENOMEM;
  }
  pthread_mutex_init(&l->lock, NULL);
  uv_async_init(loop, &l->async, deliver);
  l->async.data = l;
  if (pthread_create(&l->thread, NULL, thread_main, l) != 0) {
    snprintf(err, errlen, "cannot start the listening thread");
    close(l->stop_pipe[0]);
    close(l->stop_pipe[1]);
    uv_close((uv_handle_t *)&l->async, NULL);
    /* freed by the loop's close callback would be cleaner; the process exits on this path */
    return REEL_EIO;
  }
  *out = l;
  return 0;
}

int reel_pg_listener_connected(const reel_pg_listener *l) { return l && l->connected; }

static void on_closed(uv_handle_t *h) {
  reel_pg_listener *l = h->data;
  event *e = l->head;
  while (e) {
    event *next = e->next;
    free(e->channel);
    free(e->payload);
    free(e);
    e = next;
  }
  pthread_mutex_destroy(&l->lock);
  free_listener(l);
}

void reel_pg_listener_stop(reel_pg_listener *l) {
  if (!l) return;
  l->stopping = 1;
  ssize_t w = write(l->stop_pipe[1], "x", 1);
  (void)w;
  pthread_join(l->thread, NULL);
  close(l->stop_pipe[0]);
  close(l->stop_pipe[1]);
  uv_close((uv_handle_t *)&l->async, on_closed);
}
