/* The reel client's pure parts: the text/event-stream parser (the WHATWG
 * interpretation rules, fed whole and one byte at a time), the progress
 * line, and the client file. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "client/client_config.h"
#include "client/client_http.h"
#include "client/progress_line.h"
#include "client/sse_parser.h"
#include "common/error.h"

typedef struct {
  char got[4096];
  int n;
  int stop_after;
} sink;

static int collect(void *ctx, const reel_sse_event *ev) {
  sink *s = ctx;
  size_t len = strlen(s->got);
  snprintf(s->got + len, sizeof s->got - len, "[%s|%s|%.*s]", ev->id, ev->type, (int)ev->data_len, ev->data);
  s->n++;
  return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

/* Parses text whole and byte by byte; both must give want. */
static void expect(const char *text, const char *want) {
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    sink s = {0};
    reel_sse_parser p;
    reel_sse_parser_init(&p, 1024, 4096, collect, &s);
    size_t len = strlen(text);
    if (bytewise)
      for (size_t i = 0; i < len; i++) CHECK_INT(reel_sse_parser_feed(&p, text + i, 1), 0);
    else
      CHECK_INT(reel_sse_parser_feed(&p, text, len), 0);
    if (strcmp(s.got, want) != 0) {
      fprintf(stderr, "parsing %s (%s): got %s, want %s\n", text, bytewise ? "bytewise" : "whole", s.got, want);
      CHECK(0);
    } else {
      CHECK(1);
    }
    reel_sse_parser_free(&p);
  }
}

static void test_sse(void) {
  expect("id: 1\nevent: job.log\ndata: {\"a\":1}\n\n", "[1|job.log|{\"a\":1}]");
  expect("data: a\ndata: b\n\n", "[|message|a\nb]");            /* data lines join with LF */
  expect("data:x\r\n\r\ndata: y\r\rdata: z\n\n", "[|message|x][|message|y][|message|z]"); /* CRLF, CR, LF */
  expect(": keep-alive\n\ndata: after\n\n", "[|message|after]");  /* comments pass */
  expect("\xEF\xBB\xBF" "data: bom\n\n", "[|message|bom]");        /* a leading BOM goes */
  expect("\xEF\xBB" "data: x\n\n", "");                            /* half a BOM is text: field "\xEF\xBBdata" */
  expect("event: e\n\ndata: d\n\n", "[|message|d]");               /* no data: nothing, and the type resets */
  expect("id: 5\ndata: a\n\ndata: b\n\n", "[5|message|a][5|message|b]"); /* the id carries over */
  expect("data: a\nid: 6\n\nid\ndata: b\n\n", "[6|message|a][|message|b]"); /* "id" alone clears it */
  expect("data\n\n", "[|message|]");                                /* a field without colon: empty value */
  expect("data:  two spaces\n\n", "[|message| two spaces]");        /* only one space goes */
  expect("data: unfinished", "");                                   /* no dispatch without the blank line */
  expect("retry: 1500\nretry: x1\nfoo: bar\ndata: r\n\n", "[|message|r]");

  sink s = {0};
  reel_sse_parser p;
  reel_sse_parser_init(&p, 1024, 4096, collect, &s);
  CHECK_INT(reel_sse_parser_feed(&p, "retry: 1500\nretry: x1\nretry: 12a\n", 33), 0);
  CHECK_INT(p.retry_ms, 1500);
  CHECK_INT(reel_sse_parser_feed(&p, ": a\n: b\n", 8), 0);
  CHECK_INT(p.comments, 2);
  /* a callback's stop value comes back and the rest is left */
  s.stop_after = 1;
  CHECK_INT(reel_sse_parser_feed(&p, "id: 9\ndata: a\n\ndata: b\n\n", 24), 7);
  CHECK(strcmp(s.got, "[9|message|a]") == 0);
  CHECK(strcmp(reel_sse_parser_last_id(&p), "9") == 0);
  /* a new connection forgets a partial event but keeps the id */
  CHECK_INT(reel_sse_parser_feed(&p, "data: half", 10), 0);
  reel_sse_parser_reset_stream(&p);
  s.stop_after = 0;
  s.got[0] = '\0';
  CHECK_INT(reel_sse_parser_feed(&p, "data: whole\n\n", 13), 0);
  CHECK(strcmp(s.got, "[9|message|whole]") == 0);
  reel_sse_parser_free(&p);

  /* bounds: a long line, a big event */
  reel_sse_parser_init(&p, 16, 32, collect, &s);
  CHECK_INT(reel_sse_parser_feed(&p, "data: 0123456789abcdef", 22), REEL_ETOOBIG);
  CHECK_INT(reel_sse_parser_feed(&p, "\n\n", 2), REEL_ETOOBIG); /* stays failed */
  reel_sse_parser_free(&p);
  reel_sse_parser_init(&p, 16, 32, collect, &s);
  for (int i = 0; i < 20; i++) {
    int rc = reel_sse_parser_feed(&p, "data: 0123456\n", 14);
    if (rc) {
      CHECK_INT(rc, REEL_ETOOBIG);
      CHECK(i >= 3);
      break;
    }
    CHECK(i < 4);
  }
  reel_sse_parser_free(&p);
}

static void test_progress(void) {
  char line[256];
  reel_progress p = {.percent = 50, .stage = "keyframes", .state = "running", .elapsed_s = 72.4};
  size_t n = reel_progress_line(line, sizeof line, 80, &p);
  CHECK_INT(n, strlen(line));
  CHECK(n < 80); /* the last column stays free */
  CHECK(strstr(line, "  50%  keyframes  1:12") != NULL);
  const char *open = strchr(line, '['), *close = strchr(line, ']');
  CHECK(open == line && close);
  int hashes = 0, cells = (int)(close - open - 1);
  for (const char *c = open + 1; c < close; c++) hashes += *c == '#';
  CHECK_INT(hashes, cells / 2);
  p.percent = 140; /* clamped */
  reel_progress_line(line, sizeof line, 80, &p);
  CHECK(strstr(line, " 100%") != NULL && strchr(line, '-') == NULL);
  /* a narrow terminal: the bar keeps 10 cells and the stage is cut */
  p.percent = 0;
  p.stage = "a-very-long-stage-name-that-cannot-fit";
  n = reel_progress_line(line, sizeof line, 30, &p);
  CHECK(n < 30);
  CHECK(strncmp(line, "[----------]", 12) == 0);
  /* no stage yet: the state; an hour: H:MM:SS */
  p.stage = "";
  p.elapsed_s = 3725;
  reel_progress_line(line, sizeof line, 80, &p);
  CHECK(strstr(line, "running  1:02:05") != NULL);
  reel_progress_plain(line, sizeof line, &p);
  CHECK(strcmp(line, "  0%  running  1:02:05") == 0);
  /* a multibyte stage is cut on a character boundary */
  p.stage = "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9";
  reel_progress_line(line, sizeof line, 30, &p);
  const char *s = strstr(line, "%  ") + 3;
  int bytes = (int)(strstr(s, "  ") - s);
  CHECK(bytes % 2 == 0);
}

static void test_config(void) {
  reel_client_config cfg;
  char err[512];
  memset(&cfg, 0, sizeof cfg);
  const char *good = "url: https://reel.example.com/\ntoken: t0k\nca_file: /etc/ca.pem\n";
  CHECK_INT(reel_client_config_parse(&cfg, good, strlen(good), "c.yaml", err, sizeof err), 0);
  CHECK(cfg.url && strcmp(cfg.url, "https://reel.example.com/") == 0);
  CHECK(cfg.token && strcmp(cfg.token, "t0k") == 0);
  CHECK(cfg.ca_file && strcmp(cfg.ca_file, "/etc/ca.pem") == 0);
  reel_client_config_free(&cfg);
  static const struct {
    const char *text, *want;
  } bad[] = {
      {"url: x\ncolour: blue\n", "c.yaml:2: unknown key 'colour'"},
      {"- a\n- b\n", "c.yaml:1: expected a mapping"},
      {"token:\n", "c.yaml:1: token is empty"},
      {"url: [a]\n", "c.yaml:1: expected a string"},
      {"url: \"unterminated\n", "c.yaml:"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memset(&cfg, 0, sizeof cfg);
    err[0] = '\0';
    CHECK(reel_client_config_parse(&cfg, bad[i].text, strlen(bad[i].text), "c.yaml", err, sizeof err) != 0);
    if (strncmp(err, bad[i].want, strlen(bad[i].want)) != 0) fprintf(stderr, "got '%s', want '%s'\n", err, bad[i].want);
    CHECK(strncmp(err, bad[i].want, strlen(bad[i].want)) == 0);
    reel_client_config_free(&cfg);
  }
  /* flags win over the file; the URL loses its trailing slash; a named file must exist */
  setenv("XDG_CONFIG_HOME", "/nonexistent-reel-test", 1);
  unsetenv("REEL_URL");
  unsetenv("REEL_TOKEN");
  reel_client_overrides given = {.url = "http://h:1//", .token = "flag"};
  CHECK_INT(reel_client_config_load(&cfg, &given, err, sizeof err), 0);
  CHECK(strcmp(cfg.url, "http://h:1") == 0 && strcmp(cfg.token, "flag") == 0);
  reel_client_config_free(&cfg);
  reel_client_overrides none = {0};
  CHECK_INT(reel_client_config_load(&cfg, &none, err, sizeof err), 0);
  CHECK(strcmp(cfg.url, "http://127.0.0.1:8000") == 0 && cfg.token == NULL);
  reel_client_config_free(&cfg);
  reel_client_overrides ftp = {.url = "ftp://h"};
  CHECK(reel_client_config_load(&cfg, &ftp, err, sizeof err) != 0 && strstr(err, "http://"));
  reel_client_overrides missing = {.config_path = "/nonexistent-reel-test/c.yaml"};
  CHECK(reel_client_config_load(&cfg, &missing, err, sizeof err) != 0 && strstr(err, "c.yaml"));
}

static void test_redact_url(void) {
  char out[256];
  reel_client_redact_url("https://h:1/v1/files/j/v.mp4?expires=1&signature=abc", out, sizeof out);
  CHECK(strcmp(out, "https://h:1/v1/files/j/v.mp4?…") == 0);
  reel_client_redact_url("https://user:secret@h/p?x=1", out, sizeof out);
  CHECK(strcmp(out, "https://h/p?…") == 0);
  reel_client_redact_url("http://h:8000", out, sizeof out);
  CHECK(strcmp(out, "http://h:8000") == 0);
}

int main(void) {
  test_redact_url();
  test_sse();
  test_progress();
  test_config();
  return check_report();
}
