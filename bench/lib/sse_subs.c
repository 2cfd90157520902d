/* The subscribers of bench/events.sh: N HTTP/1.1 `GET PATH` event streams on
 * one epoll loop, the same client for reel and for the peer. Written in C so
 * that the figure is the server's: a Python client reading 1,000 sockets that
 * became readable at once stamps the last of them several milliseconds after
 * the first (its own per-read cost times N), which is the size of the latency
 * being measured. Here a read costs one recv(2) plus an incremental parse.
 *
 *   sse_subs HOST PORT PATH TOKEN N [MAX_CONNECTING]
 *
 * It opens N connections (at most MAX_CONNECTING, default 256, between the
 * connect and the stream's first field, so the listen backlog is not
 * overrun), decodes each response (head, then chunked or plain body, then
 * text/event-stream lines), and prints one line to stdout once every stream
 * has sent its `retry:` field (or failed, or 120 s passed):
 *
 *   ready OK FAILED STATUSES      e.g. "ready 1000 0 200:1000"
 *
 * From then on every event whose data holds "job_id":"…" is recorded with the
 * CLOCK_MONOTONIC time (ns) of the recv(2) that completed it. Commands on
 * stdin, one a line:
 *
 *   reset        forget what was recorded (answers "reset")
 *   dump FILE    writes "J index job_id" for every job seen, then
 *                "R conn job_index t_ns" for every record, then
 *                "C conn events_received open(0/1)" per stream; answers "dumped RECORDS"
 *   stats        answers "stats OPEN CLOSED RECORDS KEEPALIVES"
 *   (EOF)        closes every stream (RST: no TIME_WAIT left behind) and exits
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

enum { S_CONNECTING, S_HEAD, S_BODY, S_DEAD };
enum { B_PLAIN, B_CHUNK_SIZE, B_CHUNK_EXT, B_CHUNK_LF, B_CHUNK_DATA, B_CHUNK_CR, B_CHUNK_CRLF };

#define HEAD_MAX 4096
#define LINE_KEEP 200 /* the start of each line is all the parse needs ("data: {"id":..,"job_id":"..."") */

typedef struct {
  int fd;
  int state;
  int ready;       /* the stream's first field arrived */
  int status;
  int chunked;
  int body_state;
  uint64_t chunk_left;
  char *head;      /* freed once the head is parsed */
  size_t head_len;
  char line[LINE_KEEP];
  size_t line_len; /* bytes of the line so far (only LINE_KEEP kept) */
  int job;         /* job index of the event being read, -1 */
  uint32_t events;
} conn;

typedef struct {
  uint32_t conn, job;
  int64_t t;
} record;

static conn *conns;
static int n_conns, n_open, n_ready, n_failed, n_connecting, next_to_open, max_connecting = 256;
static unsigned long long keepalives;
static int status_count[600];
static struct sockaddr_in addr;
static char request[1024];
static size_t request_len;
static int ep;

static record *recs;
static size_t n_recs, cap_recs;

/* job ids: open addressing, ids are short ASCII strings */
#define JOB_SLOTS 262144
static char (*job_ids)[40];
static int *job_slot;  /* slot -> index+1 */
static int n_jobs;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int job_index(const char *id, size_t len) {
  if (len >= 40) len = 39;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
  for (size_t s = h & (JOB_SLOTS - 1);; s = (s + 1) & (JOB_SLOTS - 1)) {
    int v = job_slot[s];
    if (!v) {
      if (n_jobs >= JOB_SLOTS / 2) return -1;
      memcpy(job_ids[n_jobs], id, len);
      job_ids[n_jobs][len] = 0;
      job_slot[s] = ++n_jobs;
      return n_jobs - 1;
    }
    if (strncmp(job_ids[v - 1], id, len) == 0 && job_ids[v - 1][len] == 0) return v - 1;
  }
}

static void add_record(uint32_t c, int job, int64_t t) {
  if (n_recs == cap_recs) {
    cap_recs = cap_recs ? cap_recs * 2 : 65536;
    recs = realloc(recs, cap_recs * sizeof *recs);
    if (!recs) {
      perror("sse_subs: realloc");
      exit(1);
    }
  }
  recs[n_recs++] = (record){c, (uint32_t)job, t};
}

static void conn_close(int i, int failed) {
  conn *c = &conns[i];
  if (c->state == S_DEAD) return;
  if (!c->ready) n_connecting--;
  if (failed && !c->ready) n_failed++;
  struct linger lg = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->head);
  c->head = NULL;
  c->state = S_DEAD;
  n_open--;
}

static void open_one(void) {
  int i = next_to_open++;
  conn *c = &conns[i];
  memset(c, 0, sizeof *c);
  c->job = -1;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  n_open++;
  n_connecting++;
  if (c->fd < 0) {
    perror("sse_subs: socket");
    c->state = S_DEAD;
    n_open--, n_connecting--, n_failed++;
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->state = S_CONNECTING;
  int rc = connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
  if (rc < 0 && errno != EINPROGRESS) {
    conn_close(i, 1);
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void fill_connecting(void) {
  while (next_to_open < n_conns && n_connecting < max_connecting) open_one();
}

/* One complete SSE line (its first LINE_KEEP bytes in c->line). */
static void on_line(int i, conn *c, size_t full_len, int64_t t) {
  size_t n = c->line_len < LINE_KEEP ? c->line_len : LINE_KEEP;
  if (n > 0 && c->line[n - 1] == '\r') n--, full_len--;
  if (full_len == 0) { /* the end of an event */
    if (c->job >= 0 && c->ready) {
      add_record((uint32_t)i, c->job, t);
      c->events++;
    }
    c->job = -1;
    return;
  }
  if (c->line[0] == ':') {
    keepalives++;
    return;
  }
  if (n >= 6 && memcmp(c->line, "retry:", 6) == 0) {
    if (!c->ready) {
      c->ready = 1;
      n_ready++;
      n_connecting--;
    }
    return;
  }
  if (n >= 5 && memcmp(c->line, "data:", 5) == 0 && c->job < 0) {
    const char *p = memmem(c->line, n, "\"job_id\":\"", 10);
    if (!p) return;
    p += 10;
    const char *q = memchr(p, '"', (size_t)(c->line + n - p));
    if (q) c->job = job_index(p, (size_t)(q - p));
  }
}

/* Body bytes after chunk decoding: split into lines. */
static void on_body(int i, conn *c, const char *p, size_t n, int64_t t) {
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) : n;
    if (c->line_len < LINE_KEEP) {
      size_t room = LINE_KEEP - c->line_len;
      memcpy(c->line + c->line_len, p, take < room ? take : room);
    }
    c->line_len += take;
    if (!nl) return;
    on_line(i, c, c->line_len, t);
    c->line_len = 0;
    p = nl + 1;
    n -= take + 1;
  }
}

/* Raw bytes after the head: chunked transfer coding or plain. 0, or -1 when malformed. */
static int on_bytes(int i, conn *c, const char *p, size_t n, int64_t t) {
  while (n > 0) {
    switch (c->body_state) {
      case B_PLAIN:
        on_body(i, c, p, n, t);
        return 0;
      case B_CHUNK_SIZE: {
        char ch = *p;
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (v >= 0) c->chunk_left = c->chunk_left * 16 + (uint64_t)v;
        else if (ch == '\r' || ch == ';') c->body_state = B_CHUNK_EXT;
        else if (ch == '\n') c->body_state = c->chunk_left ? B_CHUNK_DATA : B_CHUNK_CRLF;
        else return -1;
        p++, n--;
        break;
      }
      case B_CHUNK_EXT:
        if (*p == '\n') c->body_state = c->chunk_left ? B_CHUNK_DATA : B_CHUNK_CRLF;
        p++, n--;
        break;
      case B_CHUNK_DATA: {
        size_t take = n < c->chunk_left ? n : (size_t)c->chunk_left;
        on_body(i, c, p, take, t);
        c->chunk_left -= take;
        p += take, n -= take;
        if (c->chunk_left == 0) c->body_state = B_CHUNK_CR;
        break;
      }
      case B_CHUNK_CR:
        if (*p == '\n') {
          c->body_state = B_CHUNK_SIZE;
          c->chunk_left = 0;
        } else if (*p != '\r') return -1;
        p++, n--;
        break;
      case B_CHUNK_CRLF: /* the last chunk: the stream ended */
        return -1;
      default:
        return -1;
    }
  }
  return 0;
}

static int parse_head(int i, conn *c, int64_t t) {
  char *end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
  if (!end) return c->head_len >= HEAD_MAX ? -1 : 0;
  *end = 0;
  if (strncmp(c->head, "HTTP/1.1 ", 9) != 0 && strncmp(c->head, "HTTP/1.0 ", 9) != 0) return -1;
  c->status = atoi(c->head + 9);
  if (c->status > 0 && c->status < 600) status_count[c->status]++;
  for (char *h = strstr(c->head, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
    if (strncasecmp(h + 2, "transfer-encoding:", 18) == 0 && strcasestr(h + 2, "chunked")) c->chunked = 1;
  }
  if (c->status != 200) return -1;
  c->body_state = c->chunked ? B_CHUNK_SIZE : B_PLAIN;
  c->state = S_BODY;
  size_t hl = (size_t)(end + 4 - c->head), rest = c->head_len - hl;
  char *head = c->head;
  c->head = NULL;
  int rc = on_bytes(i, c, head + hl, rest, t);
  free(head);
  return rc;
}

static void on_event(int i, uint32_t events) {
  conn *c = &conns[i];
  if (c->state == S_DEAD) return;
  if (c->state == S_CONNECTING) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err || send(c->fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) {
      conn_close(i, 1);
      return;
    }
    c->state = S_HEAD;
    c->head = malloc(HEAD_MAX);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return;
  }
  static char buf[65536];
  for (;;) {
    char *dst = buf;
    size_t room = sizeof buf;
    if (c->state == S_HEAD) dst = c->head + c->head_len, room = HEAD_MAX - c->head_len;
    ssize_t n = recv(c->fd, dst, room, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      conn_close(i, 1);
      return;
    }
    int64_t t = now_ns();
    int rc;
    if (c->state == S_HEAD) {
      c->head_len += (size_t)n;
      rc = parse_head(i, c, t);
    } else {
      rc = on_bytes(i, c, buf, (size_t)n, t);
    }
    if (rc != 0) {
      conn_close(i, 1);
      return;
    }
    if ((size_t)n < room) return; /* drained (level-triggered: more wakes us again) */
  }
}

static void dump(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    printf("dumped -1\n");
    fflush(stdout);
    return;
  }
  for (int j = 0; j < n_jobs; j++) fprintf(f, "J %d %s\n", j, job_ids[j]);
  for (size_t r = 0; r < n_recs; r++)
    fprintf(f, "R %u %u %lld\n", recs[r].conn, recs[r].job, (long long)recs[r].t);
  for (int i = 0; i < n_conns; i++) fprintf(f, "C %d %u %d\n", i, conns[i].events, conns[i].state == S_BODY);
  fclose(f);
  printf("dumped %zu\n", n_recs);
  fflush(stdout);
}

static void on_stdin(void) {
  static char cmd[4096];
  static size_t len;
  ssize_t n = read(0, cmd + len, sizeof cmd - 1 - len);
  if (n <= 0) {
    for (int i = 0; i < next_to_open; i++) conn_close(i, 0);
    exit(0);
  }
  len += (size_t)n;
  char *nl;
  while ((nl = memchr(cmd, '\n', len))) {
    *nl = 0;
    if (strcmp(cmd, "reset") == 0) {
      n_recs = 0;
      for (int i = 0; i < n_conns; i++) conns[i].events = 0;
      printf("reset\n");
    } else if (strncmp(cmd, "dump ", 5) == 0) {
      dump(cmd + 5);
    } else if (strcmp(cmd, "stats") == 0) {
      int open = 0;
      for (int i = 0; i < next_to_open; i++) open += conns[i].state == S_BODY;
      printf("stats %d %d %zu %llu\n", open, next_to_open - open, n_recs, keepalives);
    } else {
      printf("unknown\n");
    }
    fflush(stdout);
    size_t used = (size_t)(nl + 1 - cmd);
    memmove(cmd, nl + 1, len - used);
    len -= used;
  }
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: sse_subs HOST PORT PATH TOKEN N [MAX_CONNECTING]\n");
    return 2;
  }
  n_conns = atoi(argv[5]);
  if (argc > 6) max_connecting = atoi(argv[6]);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n_conns + 16 > rl.rlim_cur) {
      fprintf(stderr, "sse_subs: %d streams need more than the open-file limit %llu\n", n_conns,
              (unsigned long long)rl.rlim_cur);
      return 2;
    }
  }
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "sse_subs: HOST must be an IPv4 address\n");
    return 2;
  }
  request_len = (size_t)snprintf(request, sizeof request,
                                 "GET %s HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
                                 "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
                                 argv[3], argv[1], argv[2], argv[4]);
  conns = calloc((size_t)(n_conns ? n_conns : 1), sizeof *conns);
  job_ids = calloc(JOB_SLOTS / 2, sizeof *job_ids);
  job_slot = calloc(JOB_SLOTS, sizeof *job_slot);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || !job_ids || !job_slot || ep < 0) {
    perror("sse_subs");
    return 1;
  }
  struct epoll_event sev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
  int announced = 0;
  int64_t deadline = now_ns() + (int64_t)120 * 1000000000;
  fill_connecting();
  struct epoll_event evs[512];
  for (;;) {
    if (!announced && (n_ready + n_failed >= n_conns || now_ns() > deadline)) {
      char statuses[256] = "";
      size_t off = 0;
      for (int s = 0; s < 600; s++)
        if (status_count[s] && off < sizeof statuses - 16)
          off += (size_t)snprintf(statuses + off, sizeof statuses - off, "%s%d:%d", off ? "," : "", s, status_count[s]);
      printf("ready %d %d %s\n", n_ready, n_conns - n_ready, off ? statuses : "-");
      fflush(stdout);
      announced = 1;
      n_recs = 0; /* nothing before "ready" counts */
    }
    int k = epoll_wait(ep, evs, 512, announced ? -1 : 200);
    if (k < 0 && errno == EINTR) continue;
    for (int e = 0; e < k; e++) {
      if (evs[e].data.u32 == UINT32_MAX) on_stdin();
      else on_event((int)evs[e].data.u32, evs[e].events);
    }
    fill_connecting();
  }
}
