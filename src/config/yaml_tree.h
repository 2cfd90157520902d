/* A small, capped YAML document tree for the config loader (internal to
 * src/config). It keeps what validation needs — each node's kind, start line,
 * and for scalars the text as written and whether it was plain — and refuses
 * what a config file has no use for: aliases, anchors, custom tags, several
 * documents, non-scalar mapping keys. Input size, nesting depth and node count
 * are capped, so a hostile file cannot exhaust memory or the stack. */
#ifndef REEL_CONFIG_YAML_TREE_H
#define REEL_CONFIG_YAML_TREE_H

#include <stddef.h>

#define REEL_YAML_MAX_BYTES (1024 * 1024) /* the whole file */
#define REEL_YAML_MAX_DEPTH 32            /* nested sequences and mappings */
#define REEL_YAML_MAX_NODES 100000        /* scalars, sequences and mappings together */

typedef enum { REEL_YAML_SCALAR, REEL_YAML_SEQUENCE, REEL_YAML_MAPPING } reel_yaml_kind;

typedef struct reel_yaml_node {
  reel_yaml_kind kind;
  unsigned long line; /* 1-based line where the node starts */
  /* Scalars: the text after YAML unescaping, NUL-terminated, but it may also
   * contain NUL bytes ("\0" escapes), so use length. */
  char *text;
  size_t length;
  /* Scalars: 1 when written plain (unquoted, not a block scalar) and untagged,
   * so its type (integer, boolean, null...) comes from its text. */
  int plain;
  /* Sequences: the items. Mappings: key, value, key, value... (keys are scalars). */
  struct reel_yaml_node **children;
  size_t count;
  size_t capacity;
} reel_yaml_node;

/* Parses one YAML document from input. On success returns 0 and sets *root to
 * the document's top node (NULL for a stream with no document). On failure
 * returns REEL_ECONFIG (or REEL_ENOMEM) and writes one line into err, as
 * "NAME:LINE: what is wrong" or "NAME:LINE: KEY: what is wrong". */
int reel_yaml_parse(const char *input, size_t length, const char *name, reel_yaml_node **root,
                    char *err, size_t errlen);
/* Appends text to the NUL-terminated string out (size bytes in all) so it can
 * be shown in a message: control characters, quotes and backslashes escaped,
 * cut after about max_chars bytes with "...". Never splits a UTF-8 character. */
void reel_yaml_append_printable(char *out, size_t size, const char *text, size_t length,
                                size_t max_chars);
/* Releases a node and everything under it; NULL is fine. */
void reel_yaml_free(reel_yaml_node *node);

#endif
