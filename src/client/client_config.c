#include "client/client_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_FILE_BYTES (64 * 1024)

void reel_client_config_free(reel_client_config *cfg) {
  free(cfg->url);
  free(cfg->token);
  free(cfg->ca_file);
  free(cfg->path);
  memset(cfg, 0, sizeof *cfg);
}

static int set_string(char **slot, const char *value) {
  char *copy = strdup(value);
  if (!copy) return -1;
  free(*slot);
  *slot = copy;
  return 0;
}

int reel_client_config_parse(reel_client_config *cfg, const char *text, size_t len, const char *name, char *err,
                             size_t errlen) {
  yaml_parser_t parser;
  yaml_event_t ev;
  if (!yaml_parser_initialize(&parser)) {
    snprintf(err, errlen, "%s: out of memory", name);
    return -1;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int rc = 0, depth = 0, expect_key = 1, done = 0;
  char key[64] = "";
  size_t key_line = 0;
  while (!done && rc == 0) {
    if (!yaml_parser_parse(&parser, &ev)) {
      snprintf(err, errlen, "%s:%zu: %s", name, parser.problem_mark.line + 1,
               parser.problem ? parser.problem : "malformed YAML");
      rc = -1;
      break;
    }
    size_t line = ev.start_mark.line + 1;
    switch (ev.type) {
    case YAML_STREAM_END_EVENT: done = 1; break;
    case YAML_MAPPING_START_EVENT:
      if (depth == 0) {
        depth = 1;
      } else {
        snprintf(err, errlen, "%s:%zu: %s: expected a string", name, line, key);
        rc = -1;
      }
      break;
    case YAML_SEQUENCE_START_EVENT:
      snprintf(err, errlen, "%s:%zu: %s", name, line,
               depth == 0 ? "expected a mapping of url, token and ca_file" : "expected a string");
      rc = -1;
      break;
    case YAML_MAPPING_END_EVENT: depth = 0; break;
    case YAML_SCALAR_EVENT: {
      const char *value = (const char *)ev.data.scalar.value;
      if (depth == 0) {
        if (ev.data.scalar.length > 0) {
          snprintf(err, errlen, "%s:%zu: expected a mapping of url, token and ca_file", name, line);
          rc = -1;
        }
      } else if (expect_key) {
        snprintf(key, sizeof key, "%s", value);
        key_line = line;
        if (strcmp(key, "url") != 0 && strcmp(key, "token") != 0 && strcmp(key, "ca_file") != 0) {
          snprintf(err, errlen, "%s:%zu: unknown key '%s' (known: url, token, ca_file)", name, key_line, key);
          rc = -1;
        }
        expect_key = 0;
      } else {
        char **slot = strcmp(key, "url") == 0 ? &cfg->url : strcmp(key, "token") == 0 ? &cfg->token : &cfg->ca_file;
        if (ev.data.scalar.length == 0) {
          snprintf(err, errlen, "%s:%zu: %s is empty", name, line, key);
          rc = -1;
        } else if (set_string(slot, value) != 0) {
          snprintf(err, errlen, "%s: out of memory", name);
          rc = -1;
        }
        expect_key = 1;
      }
      break;
    }
    default: break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  return rc;
}

/* Reads the client file at path into cfg; a missing file is fine unless it was named. */
static int read_file(reel_client_config *cfg, const char *path, int named, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT && !named) return 0;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
    fprintf(stderr, "reel: warning: %s can be read by other users and may hold a token (chmod 600 it)\n", path);
  char *text = malloc(MAX_FILE_BYTES + 1);
  if (!text) {
    fclose(f);
    snprintf(err, errlen, "%s: out of memory", path);
    return -1;
  }
  size_t n = fread(text, 1, MAX_FILE_BYTES + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || n > MAX_FILE_BYTES) {
    free(text);
    snprintf(err, errlen, "%s: %s", path, bad ? "cannot be read" : "larger than 64 KiB");
    return -1;
  }
  int rc = reel_client_config_parse(cfg, text, n, path, err, errlen);
  free(text);
  if (rc == 0 && set_string(&cfg->path, path) != 0) rc = -1;
  return rc;
}

static const char *pick(const char *flag, const char *env) {
  if (flag && flag[0]) return flag;
  const char *v = getenv(env);
  return v && v[0] ? v : NULL;
}

int reel_client_config_load(reel_client_config *cfg, const reel_client_overrides *given, char *err, size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  char path[4096];
  int named = given->config_path != NULL;
  if (named) {
    snprintf(path, sizeof path, "%s", given->config_path);
  } else {
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0]) snprintf(path, sizeof path, "%s/reel/client.yaml", xdg);
    else if (home && home[0]) snprintf(path, sizeof path, "%s/.config/reel/client.yaml", home);
    else path[0] = '\0';
  }
  if (path[0] && read_file(cfg, path, named, err, errlen) != 0) {
    reel_client_config_free(cfg);
    return -1;
  }
  const char *url = pick(given->url, "REEL_URL"), *token = pick(given->token, "REEL_TOKEN"),
             *ca = pick(given->ca_file, "REEL_CACERT");
  if ((url && set_string(&cfg->url, url)) || (token && set_string(&cfg->token, token)) ||
      (ca && set_string(&cfg->ca_file, ca)) || (!cfg->url && set_string(&cfg->url, "http://127.0.0.1:8000"))) {
    snprintf(err, errlen, "out of memory");
    reel_client_config_free(cfg);
    return -1;
  }
  if (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0) {
    snprintf(err, errlen, "the server URL must start with http:// or https:// (got '%.200s')", cfg->url);
    reel_client_config_free(cfg);
    return -1;
  }
  size_t n = strlen(cfg->url);
  while (n > 0 && cfg->url[n - 1] == '/') cfg->url[--n] = '\0';
  return 0;
}
