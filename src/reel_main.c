/* reel: the command-line client of a reeld server (SPEC section 13).
 *
 *   reel submit PROMPT [--wait] [-o FILE]   a job; with --wait a live progress
 *                                           line, then the video downloaded
 *   reel status ID | ls | logs ID [-f] | cancel ID | download ID [-o FILE]
 *   reel watch [ID]                         every event, as it happens
 *
 * Exit status: 0 done (the job finished), 1 the job failed, 2 usage,
 * 3 the job was canceled, 4 the server refused the request, 5 the server
 * could not be reached, 130 interrupted (docs/client.md). */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "client/client_config.h"
#include "client/client_http.h"
#include "client/follow.h"
#include "client/progress_line.h"
#include "common/clock.h"
#include "common/random.h"

enum {
  EXIT_DONE = 0,
  EXIT_JOB_FAILED = 1,
  EXIT_USAGE = 2,
  EXIT_JOB_CANCELED = 3,
  EXIT_REFUSED = 4,
  EXIT_UNREACHABLE = 5,
  EXIT_INTERRUPTED = 130
};

static const char usage_text[] =
    "usage: reel [options] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  submit PROMPT [--wait] [-o FILE] [--idempotency-key KEY]\n"
    "                       queue a job and print its id; with --wait follow it with a\n"
    "                       live progress line, then download the video and print its path\n"
    "  status ID [--json]   the job's state\n"
    "  ls [--status S] [--limit N] [--json]\n"
    "                       the newest jobs\n"
    "  logs ID [-f] [--tail N]\n"
    "                       the job's output; -f follows it until the job ends\n"
    "  cancel ID            cancel a job\n"
    "  download ID [-o FILE]\n"
    "                       download a finished job's video (default ./ID.mp4)\n"
    "  watch [ID] [--types T,...] [--json]\n"
    "                       print every event of a job (until it ends) or of all jobs\n"
    "\n"
    "options:\n"
    "  --url URL            the server (REEL_URL, url: in the client file; default\n"
    "                       http://127.0.0.1:8000)\n"
    "  --token TOKEN        the bearer token (REEL_TOKEN, token: in the client file)\n"
    "  --cacert FILE        CA certificates for https (REEL_CACERT, ca_file:)\n"
    "  --config FILE        the client file (default ~/.config/reel/client.yaml)\n"
    "  --plain              plain lines even on a terminal\n"
    "  -h, --help           this text\n"
    "\n"
    "exit status: 0 done, 1 the job failed, 2 usage, 3 the job was canceled,\n"
    "4 the server refused the request, 5 the server could not be reached, 130 interrupted\n";

typedef struct {
  const char *command;
  const char *args[4];
  int n_args;
  reel_client_overrides given;
  const char *output, *status, *types, *idempotency_key;
  long limit, tail;
  int wait, follow, json, plain;
} options;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static int usage_error(const char *fmt, const char *what) {
  fprintf(stderr, "reel: ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, "\n(reel --help shows the commands)\n");
  return EXIT_USAGE;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!s[0] || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

/* Options may come before or after the command. 0, or an exit status. */
static int parse_args(int argc, char **argv, options *o) {
  memset(o, 0, sizeof *o);
  o->limit = 20;
  o->tail = 100;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char **slot = NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_text, stdout);
      exit(EXIT_DONE);
    } else if (strcmp(a, "--wait") == 0) {
      o->wait = 1;
    } else if (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0) {
      o->follow = 1;
    } else if (strcmp(a, "--json") == 0) {
      o->json = 1;
    } else if (strcmp(a, "--plain") == 0) {
      o->plain = 1;
    } else if (strcmp(a, "--url") == 0) {
      slot = &o->given.url;
    } else if (strcmp(a, "--token") == 0) {
      slot = &o->given.token;
    } else if (strcmp(a, "--cacert") == 0) {
      slot = &o->given.ca_file;
    } else if (strcmp(a, "--config") == 0) {
      slot = &o->given.config_path;
    } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
      slot = &o->output;
    } else if (strcmp(a, "--status") == 0) {
      slot = &o->status;
    } else if (strcmp(a, "--types") == 0) {
      slot = &o->types;
    } else if (strcmp(a, "--idempotency-key") == 0) {
      slot = &o->idempotency_key;
    } else if (strcmp(a, "--limit") == 0 || strcmp(a, "--tail") == 0) {
      if (i + 1 >= argc) return usage_error("%s needs a value", a);
      long *n = strcmp(a, "--limit") == 0 ? &o->limit : &o->tail;
      if (parse_long(argv[++i], 1, 10000, n) != 0) return usage_error("%s takes a number from 1 to 10000", a);
    } else if (strcmp(a, "--") == 0) {
      for (i++; i < argc; i++) {
        if (!o->command) o->command = argv[i];
        else if (o->n_args < 4) o->args[o->n_args++] = argv[i];
        else return usage_error("too many arguments (%s)", argv[i]);
      }
    } else if (a[0] == '-' && a[1]) {
      return usage_error("unknown option %s", a);
    } else if (!o->command) {
      o->command = a;
    } else if (o->n_args < 4) {
      o->args[o->n_args++] = a;
    } else {
      return usage_error("too many arguments (%s)", a);
    }
    if (slot) {
      if (i + 1 >= argc) return usage_error("%s needs a value", a);
      *slot = argv[++i];
    }
  }
  if (!o->command) {
    fputs(usage_text, stderr);
    return EXIT_USAGE;
  }
  return 0;
}

/* ---- talking to the server ---- */

typedef struct {
  reel_client *client;
  reel_client_config cfg;
} session;

/* A request whose answer must be a success. The JSON answer in *out (the
 * caller decrefs), or an exit status after printing why. */
static int call_ok(session *s, const char *method, const char *path, const char *body, const char *const *headers,
                   json_t **out) {
  reel_client_response resp;
  char err[1024];
  if (reel_client_call(s->client, method, path, body, headers, &resp, err, sizeof err) != 0) {
    fprintf(stderr, "reel: %s\n", err);
    return interrupted ? EXIT_INTERRUPTED : EXIT_UNREACHABLE;
  }
  if (resp.status < 200 || resp.status > 299) {
    reel_client_problem_text(&resp, err, sizeof err);
    fprintf(stderr, "reel: %s\n", err);
    reel_client_response_free(&resp);
    return EXIT_REFUSED;
  }
  *out = resp.json;
  resp.json = NULL;
  reel_client_response_free(&resp);
  if (!*out) {
    fprintf(stderr, "reel: the server's answer is not JSON\n");
    return EXIT_REFUSED;
  }
  return 0;
}

static const char *str_of(const json_t *obj, const char *key) {
  const char *v = json_string_value(json_object_get(obj, key));
  return v ? v : "";
}

static int valid_id(const char *id) {
  if (reel_job_id_valid(id, strlen(id))) return 1;
  fprintf(stderr, "reel: '%s' is not a job id (they look like job_01JD8X3QZ4N5P6R7S8T9V0W1XY)\n", id);
  return 0;
}

/* ---- the live line ---- */

typedef struct {
  int tty;               /* a bar redrawn in place on stderr; else plain lines */
  int shown;             /* the bar is on screen (a newline ends it) */
  uint64_t start_ns;
  long last_second;
  int last_percent;
  char last_label[64];
  reel_progress p;
  char stage[64], state[32];
  char job_id[64];
} view;

static int term_width(void) {
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

static void view_draw(view *v, int force) {
  v->p.elapsed_s = (double)(reel_mono_ns() - v->start_ns) / 1e9;
  v->p.stage = v->stage;
  v->p.state = v->state;
  if (v->tty) {
    long second = (long)v->p.elapsed_s;
    if (!force && second == v->last_second) return;
    v->last_second = second;
    char line[512];
    reel_progress_line(line, sizeof line, term_width(), &v->p);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    v->shown = 1;
    return;
  }
  const char *label = v->stage[0] ? v->stage : v->state;
  if (v->p.percent == v->last_percent && strcmp(label, v->last_label) == 0) return;
  v->last_percent = v->p.percent;
  snprintf(v->last_label, sizeof v->last_label, "%s", label);
  char line[256];
  reel_progress_plain(line, sizeof line, &v->p);
  fprintf(stderr, "%s  %s\n", v->job_id, line);
  fflush(stderr);
}

/* Ends the bar's line so the next output starts on its own. */
static void view_break(view *v) {
  if (v->tty && v->shown) {
    fputc('\n', stderr);
    v->shown = 0;
  }
}

static void view_notice(void *ctx, const char *msg) {
  view *v = ctx;
  if (v->tty && v->shown) fputs("\r\033[K", stderr);
  fprintf(stderr, "reel: %s\n", msg);
  v->shown = 0;
  if (v->tty) view_draw(v, 1);
}

/* ---- following one job ---- */

typedef struct {
  view v;
  char terminal[32];   /* the terminal event's type, once seen */
  json_t *job;         /* the job at its terminal event */
  int print_logs;      /* logs -f: job.log lines to stdout */
  int show_bar;
} job_follower;

static int follower_tick(void *ctx) {
  job_follower *f = ctx;
  if (interrupted) return 1;
  if (f->show_bar) view_draw(&f->v, 0);
  return 0;
}

/* Applies the job object of a created/started/retrying/terminal event. */
static void take_job(job_follower *f, const json_t *job) {
  json_t *pr = json_object_get(job, "progress");
  if (json_is_integer(pr)) f->v.p.percent = (int)json_integer_value(pr);
  snprintf(f->v.stage, sizeof f->v.stage, "%s", str_of(job, "stage"));
  snprintf(f->v.state, sizeof f->v.state, "%s", str_of(job, "status"));
}

static int on_job_event(void *ctx, const reel_sse_event *ev) {
  job_follower *f = ctx;
  json_t *e = json_loadb(ev->data, ev->data_len, 0, NULL);
  if (!e) return 0; /* not one of reeld's events: passed over */
  const char *type = str_of(e, "type");
  json_t *data = json_object_get(e, "data");
  int stop = 0;
  if (strcmp(str_of(e, "job_id"), f->v.job_id) == 0 && json_is_object(data)) {
    if (strcmp(type, "job.progress") == 0) {
      json_t *pr = json_object_get(data, "progress");
      if (json_is_integer(pr)) f->v.p.percent = (int)json_integer_value(pr);
      snprintf(f->v.stage, sizeof f->v.stage, "%s", str_of(data, "stage"));
      snprintf(f->v.state, sizeof f->v.state, "running");
    } else if (strcmp(type, "job.log") == 0) {
      if (f->print_logs) {
        printf("%s\n", str_of(data, "line"));
        fflush(stdout);
      }
    } else if (strcmp(type, "job.retrying") == 0) {
      take_job(f, data);
      snprintf(f->v.state, sizeof f->v.state, "retrying");
      f->v.stage[0] = '\0';
    } else {
      take_job(f, data);
      if (strcmp(type, "job.finished") == 0 || strcmp(type, "job.failed") == 0 || strcmp(type, "job.canceled") == 0) {
        snprintf(f->terminal, sizeof f->terminal, "%s", type);
        f->job = json_incref(data);
        stop = 1;
      }
    }
    if (f->show_bar) view_draw(&f->v, 1);
  }
  json_decref(e);
  return stop;
}

/* Follows the job's event stream until its terminal event. 0 with
 * f->terminal set, or an exit status after printing why. */
static int follow_job(session *s, job_follower *f, const char *types) {
  char path[512];
  snprintf(path, sizeof path, "/v1/jobs/%s/events%s%s", f->v.job_id, types ? "?types=" : "", types ? types : "");
  reel_client_set_tick(s->client, follower_tick, f);
  reel_follow fl = {.client = s->client, .path = path, .on_event = on_job_event, .on_notice = view_notice,
                    .tick = follower_tick, .ctx = f};
  char err[1024];
  reel_follow_result r = reel_follow_run(&fl, err, sizeof err);
  reel_client_set_tick(s->client, NULL, NULL);
  if (r == REEL_FOLLOW_DONE) return 0;
  view_break(&f->v);
  if (r == REEL_FOLLOW_INTERRUPTED) {
    fprintf(stderr, "reel: stopped following %s; the job goes on (reel cancel %s cancels it)\n", f->v.job_id,
            f->v.job_id);
    return EXIT_INTERRUPTED;
  }
  fprintf(stderr, "reel: %s\n", err);
  return r == REEL_FOLLOW_REFUSED ? EXIT_REFUSED : EXIT_UNREACHABLE;
}

/* The exit status a job's end means, after saying how it ended. */
static int report_end(const job_follower *f) {
  if (strcmp(f->terminal, "job.failed") == 0) {
    const char *why = str_of(f->job, "error");
    fprintf(stderr, "reel: job %s failed: %s\n", f->v.job_id, why[0] ? why : "(no reason recorded)");
    return EXIT_JOB_FAILED;
  }
  if (strcmp(f->terminal, "job.canceled") == 0) {
    fprintf(stderr, "reel: job %s was canceled\n", f->v.job_id);
    return EXIT_JOB_CANCELED;
  }
  return EXIT_DONE;
}

/* Downloads the job's video to dest (default ./ID.mp4) and prints the path. */
static int download_job(session *s, const char *id, const char *dest) {
  char path[256], def[128];
  snprintf(path, sizeof path, "/v1/jobs/%s/artifact", id);
  json_t *link = NULL;
  int rc = call_ok(s, "GET", path, NULL, NULL, &link);
  if (rc) return rc;
  const char *url = str_of(link, "url");
  if (!dest) {
    snprintf(def, sizeof def, "%s.mp4", id);
    dest = def;
  }
  char err[1024];
  if (!url[0]) {
    fprintf(stderr, "reel: the server gave no download URL\n");
    rc = EXIT_REFUSED;
  } else if (reel_client_download(s->client, url, dest, err, sizeof err) != 0) {
    fprintf(stderr, "reel: %s\n", err);
    rc = interrupted ? EXIT_INTERRUPTED : EXIT_UNREACHABLE;
  } else {
    printf("%s\n", dest);
  }
  json_decref(link);
  return rc;
}

/* ---- the commands ---- */

/* The one job ID a command takes: 0, or an exit status after saying why. */
static int job_arg(const options *o, const char *command) {
  if (o->n_args != 1) {
    fprintf(stderr, "reel: %s takes one job ID\n(reel --help shows the commands)\n", command);
    return EXIT_USAGE;
  }
  return valid_id(o->args[0]) ? 0 : EXIT_USAGE;
}

/* method /v1/jobs/{ID}{suffix} for the command's job; its JSON answer in *out. */
static int job_call(session *s, const options *o, const char *method, const char *suffix, json_t **out) {
  char path[256];
  snprintf(path, sizeof path, "/v1/jobs/%s%s", o->args[0], suffix);
  return call_ok(s, method, path, NULL, NULL, out);
}

static int cmd_submit(session *s, const options *o) {
  if (o->n_args != 1) return usage_error("%s", "submit takes one PROMPT (quote it)");
  json_t *body = json_pack("{s:s}", "prompt", o->args[0]);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!text) {
    fprintf(stderr, "reel: the prompt is not valid UTF-8\n");
    return EXIT_USAGE;
  }
  /* one key for every try of this submit: a retry after a lost answer
   * gets the first job back instead of making a second */
  char key[96], header[160];
  if (o->idempotency_key) {
    snprintf(key, sizeof key, "%s", o->idempotency_key);
  } else {
    unsigned char raw[16];
    if (reel_random_bytes(raw, sizeof raw) != 0) memset(raw, 0, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++) snprintf(key + 2 * i, 3, "%02x", raw[i]);
  }
  snprintf(header, sizeof header, "Idempotency-Key: %s", key);
  const char *headers[] = {header, NULL};
  uint64_t start = reel_mono_ns();
  json_t *job = NULL;
  int rc = 0;
  for (int attempt = 1;; attempt++) {
    reel_client_response resp;
    char err[1024];
    if (reel_client_call(s->client, "POST", "/v1/jobs", text, headers, &resp, err, sizeof err) != 0) {
      if (attempt < 4 && !interrupted) {
        fprintf(stderr, "reel: %s; trying again\n", err);
        sleep(1);
        continue;
      }
      fprintf(stderr, "reel: %s\n", err);
      rc = interrupted ? EXIT_INTERRUPTED : EXIT_UNREACHABLE;
      break;
    }
    if ((resp.status == 503 || resp.status == 429) && attempt < 4 && !interrupted) {
      long wait_s = resp.retry_after_s >= 0 && resp.retry_after_s <= 30 ? resp.retry_after_s : 1;
      reel_client_problem_text(&resp, err, sizeof err);
      fprintf(stderr, "reel: %s; trying again in %ld s\n", err, wait_s);
      reel_client_response_free(&resp);
      sleep((unsigned)wait_s);
      continue;
    }
    if (resp.status < 200 || resp.status > 299 || !resp.json) {
      reel_client_problem_text(&resp, err, sizeof err);
      fprintf(stderr, "reel: %s\n", err);
      rc = EXIT_REFUSED;
    } else {
      job = json_incref(resp.json);
    }
    reel_client_response_free(&resp);
    break;
  }
  free(text);
  if (rc) return rc;
  const char *id = str_of(job, "id");
  if (!reel_job_id_valid(id, strlen(id))) {
    fprintf(stderr, "reel: the server's answer has no job id\n");
    json_decref(job);
    return EXIT_REFUSED;
  }
  if (!o->wait) {
    printf("%s\n", id);
    json_decref(job);
    return EXIT_DONE;
  }
  job_follower f;
  memset(&f, 0, sizeof f);
  f.v.tty = !o->plain && isatty(STDERR_FILENO);
  f.v.start_ns = start;
  f.v.last_second = -1;
  f.v.last_percent = -1;
  f.show_bar = 1;
  snprintf(f.v.job_id, sizeof f.v.job_id, "%s", id);
  take_job(&f, job);
  json_decref(job);
  view_draw(&f.v, 1);
  rc = follow_job(s, &f, NULL);
  if (rc == 0) {
    view_draw(&f.v, 1);
    view_break(&f.v);
    rc = report_end(&f);
    if (rc == EXIT_DONE) rc = download_job(s, f.v.job_id, o->output);
  }
  if (f.job) json_decref(f.job);
  return rc;
}

static void print_value(const char *key, const json_t *v) {
  if (json_is_string(v)) printf("%-12s %s\n", key, json_string_value(v));
  else if (json_is_null(v) || !v) printf("%-12s -\n", key);
  else {
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%-12s %s\n", key, t ? t : "?");
    free(t);
  }
}

static int cmd_status(session *s, const options *o) {
  json_t *job = NULL;
  int rc = job_arg(o, "status");
  if (rc || (rc = job_call(s, o, "GET", "", &job))) return rc;
  if (o->json) {
    char *t = json_dumps(job, JSON_INDENT(2));
    if (t) printf("%s\n", t);
    free(t);
  } else {
    static const char *const keys[] = {"id", "status", "progress", "stage", "created_at", "started_at",
                                       "finished_at", "attempts", "error", "artifact_uri"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) print_value(keys[i], json_object_get(job, keys[i]));
  }
  json_decref(job);
  return EXIT_DONE;
}

/* Percent-encodes a query value (status= and types= take plain words; this keeps any input harmless). */
static void query_escape(const char *in, char *out, size_t outlen) {
  size_t j = 0;
  for (; *in && j + 4 < outlen; in++) {
    unsigned char c = (unsigned char)*in;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == ',')
      out[j++] = (char)c;
    else j += (size_t)snprintf(out + j, outlen - j, "%%%02X", c);
  }
  out[j] = '\0';
}

static int cmd_ls(session *s, const options *o) {
  if (o->n_args != 0) return usage_error("%s", "ls takes no arguments (--status S, --limit N)");
  char path[512], st[128] = "";
  if (o->status) query_escape(o->status, st, sizeof st);
  snprintf(path, sizeof path, "/v1/jobs?limit=%ld%s%s", o->limit, st[0] ? "&status=" : "", st);
  json_t *page = NULL;
  int rc = call_ok(s, "GET", path, NULL, NULL, &page);
  if (rc) return rc;
  json_t *jobs = json_object_get(page, "jobs");
  if (o->json) {
    char *t = json_dumps(page, JSON_INDENT(2));
    if (t) printf("%s\n", t);
    free(t);
  } else {
    printf("%-30s  %-9s  %4s  %-12s  %s\n", "ID", "STATUS", "PCT", "STAGE", "CREATED");
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
      printf("%-30s  %-9s  %3lld%%  %-12s  %s\n", str_of(j, "id"), str_of(j, "status"),
             (long long)json_integer_value(json_object_get(j, "progress")), str_of(j, "stage"), str_of(j, "created_at"));
    }
    if (json_is_string(json_object_get(page, "next_cursor")))
      fprintf(stderr, "(more jobs: --limit raises the page size)\n");
  }
  json_decref(page);
  return EXIT_DONE;
}

static int cmd_logs(session *s, const options *o) {
  int rc = job_arg(o, "logs");
  if (rc) return rc;
  if (!o->follow) {
    char suffix[64];
    snprintf(suffix, sizeof suffix, "/logs?tail=%ld", o->tail);
    json_t *logs = NULL;
    if ((rc = job_call(s, o, "GET", suffix, &logs))) return rc;
    size_t i;
    json_t *line;
    json_array_foreach(json_object_get(logs, "lines"), i, line) printf("%s\n", json_string_value(line));
    json_decref(logs);
    return EXIT_DONE;
  }
  /* every line from the first, then live, until the job ends */
  job_follower f;
  memset(&f, 0, sizeof f);
  f.print_logs = 1;
  f.v.start_ns = reel_mono_ns();
  snprintf(f.v.job_id, sizeof f.v.job_id, "%s", o->args[0]);
  rc = follow_job(s, &f, "job.log,job.finished,job.failed,job.canceled");
  if (rc == 0) rc = report_end(&f);
  if (f.job) json_decref(f.job);
  return rc;
}

static int cmd_cancel(session *s, const options *o) {
  json_t *ok = NULL;
  int rc = job_arg(o, "cancel");
  if (rc || (rc = job_call(s, o, "POST", "/cancel", &ok))) return rc;
  json_decref(ok);
  printf("canceled %s\n", o->args[0]);
  return EXIT_DONE;
}

static int cmd_download(session *s, const options *o) {
  int rc = job_arg(o, "download");
  return rc ? rc : download_job(s, o->args[0], o->output);
}

/* ---- watch ---- */

typedef struct {
  int json;
  const char *job_id; /* NULL: every job */
  char terminal[32];
  json_t *job;
} watcher;

static int watcher_tick(void *ctx) {
  (void)ctx;
  return interrupted != 0;
}

static void watcher_notice(void *ctx, const char *msg) {
  (void)ctx;
  fprintf(stderr, "reel: %s\n", msg);
}

static int on_watch_event(void *ctx, const reel_sse_event *ev) {
  watcher *w = ctx;
  json_t *e = json_loadb(ev->data, ev->data_len, 0, NULL);
  if (!e) return 0;
  const char *type = str_of(e, "type");
  json_t *data = json_object_get(e, "data");
  if (w->json) {
    printf("%.*s\n", (int)ev->data_len, ev->data);
  } else {
    char summary[512] = "";
    if (strcmp(type, "job.progress") == 0)
      snprintf(summary, sizeof summary, "%3lld%%  %s", (long long)json_integer_value(json_object_get(data, "progress")),
               str_of(data, "stage"));
    else if (strcmp(type, "job.log") == 0)
      snprintf(summary, sizeof summary, "%s", str_of(data, "line"));
    else if (strcmp(type, "job.failed") == 0)
      snprintf(summary, sizeof summary, "%s", str_of(data, "error"));
    else if (strcmp(type, "job.retrying") == 0)
      snprintf(summary, sizeof summary, "attempt %lld: %s", (long long)json_integer_value(json_object_get(data, "attempts")),
               str_of(data, "error"));
    printf("%s  %-6lld %s  %-13s %s\n", str_of(e, "created_at"), (long long)json_integer_value(json_object_get(e, "id")),
           str_of(e, "job_id"), type, summary);
  }
  fflush(stdout);
  int stop = 0;
  if (w->job_id && strcmp(str_of(e, "job_id"), w->job_id) == 0 &&
      (strcmp(type, "job.finished") == 0 || strcmp(type, "job.failed") == 0 || strcmp(type, "job.canceled") == 0)) {
    snprintf(w->terminal, sizeof w->terminal, "%s", type);
    stop = 1;
  }
  json_decref(e);
  return stop;
}

static int cmd_watch(session *s, const options *o) {
  if (o->n_args > 1) return usage_error("%s", "watch takes at most one job ID");
  watcher w = {.json = o->json, .job_id = o->n_args ? o->args[0] : NULL};
  if (w.job_id && !valid_id(w.job_id)) return EXIT_USAGE;
  char path[512], types[256] = "";
  if (o->types) query_escape(o->types, types, sizeof types);
  if (w.job_id) snprintf(path, sizeof path, "/v1/jobs/%s/events%s%s", w.job_id, types[0] ? "?types=" : "", types);
  else snprintf(path, sizeof path, "/v1/events%s%s", types[0] ? "?types=" : "", types);
  reel_client_set_tick(s->client, watcher_tick, &w);
  reel_follow fl = {.client = s->client, .path = path, .on_event = on_watch_event, .on_notice = watcher_notice,
                    .tick = watcher_tick, .ctx = &w};
  char err[1024];
  reel_follow_result r = reel_follow_run(&fl, err, sizeof err);
  if (r == REEL_FOLLOW_INTERRUPTED) return w.job_id ? EXIT_INTERRUPTED : EXIT_DONE;
  if (r != REEL_FOLLOW_DONE) {
    fprintf(stderr, "reel: %s\n", err);
    return r == REEL_FOLLOW_REFUSED ? EXIT_REFUSED : EXIT_UNREACHABLE;
  }
  if (strcmp(w.terminal, "job.failed") == 0) return EXIT_JOB_FAILED;
  if (strcmp(w.terminal, "job.canceled") == 0) return EXIT_JOB_CANCELED;
  return EXIT_DONE;
}

int main(int argc, char **argv) {
  options o;
  int rc = parse_args(argc, argv, &o);
  if (rc) return rc;
  static const struct {
    const char *name;
    int (*run)(session *, const options *);
  } commands[] = {{"submit", cmd_submit}, {"status", cmd_status},     {"ls", cmd_ls},      {"logs", cmd_logs},
                  {"cancel", cmd_cancel}, {"download", cmd_download}, {"watch", cmd_watch}};
  int (*run)(session *, const options *) = NULL;
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (strcmp(o.command, commands[i].name) == 0) run = commands[i].run;
  if (!run) return usage_error("unknown command '%s'", o.command);
  session s;
  memset(&s, 0, sizeof s);
  char err[1024];
  if (reel_client_config_load(&s.cfg, &o.given, err, sizeof err) != 0) {
    fprintf(stderr, "reel: %s\n", err);
    return EXIT_USAGE;
  }
  s.client = reel_client_new(&s.cfg);
  if (!s.client) {
    fprintf(stderr, "reel: cannot start the HTTP client\n");
    reel_client_config_free(&s.cfg);
    return EXIT_UNREACHABLE;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  rc = run(&s, &o);
  reel_client_free(s.client);
  reel_client_config_free(&s.cfg);
  return rc;
}
