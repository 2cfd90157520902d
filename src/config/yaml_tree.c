/* Turns reel.yaml's bytes into a small node tree with line numbers, using
 * libyaml's event parser. The config loader validates that tree; keeping the
 * parsing here lets it deal only with keys and values. Limits (size, depth,
 * node count) are enforced while parsing, before anything large is built, and
 * YAML features a config file does not need (aliases, anchors, custom tags,
 * several documents) are refused with a message naming the line. */
#include "config/yaml_tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/error.h"

#define TAG_STRING "tag:yaml.org,2002:str"
#define TAG_SEQUENCE "tag:yaml.org,2002:seq"
#define TAG_MAPPING "tag:yaml.org,2002:map"
#define ALIASES_REFUSED \
  "anchors (&name) and aliases (*name) are not supported (write the value out in full)"

typedef struct {
  const char *name; /* the file, for messages */
  const char *input;
  size_t input_length;
  char *err;
  size_t errlen;
  reel_yaml_node *root;
  reel_yaml_node *open[REEL_YAML_MAX_DEPTH]; /* sequences and mappings not yet closed */
  int depth;
  size_t node_count;
  int document_count;
} builder;

void reel_yaml_append_printable(char *out, size_t size, const char *text, size_t length,
                                size_t max_chars) {
  size_t used = strlen(out);
  size_t i = 0;
  for (; i < length; i++) {
    unsigned char c = (unsigned char)text[i];
    int continuation = (c & 0xC0) == 0x80;
    if (i >= max_chars && !continuation) break;
    char piece[8];
    if (c == '"' || c == '\\') {
      snprintf(piece, sizeof piece, "\\%c", c);
    } else if (c == '\n') {
      snprintf(piece, sizeof piece, "\\n");
    } else if (c == '\t') {
      snprintf(piece, sizeof piece, "\\t");
    } else if (c < 0x20 || c == 0x7F) {
      snprintf(piece, sizeof piece, "\\x%02X", c);
    } else {
      piece[0] = (char)c;
      piece[1] = '\0';
    }
    size_t piece_length = strlen(piece);
    if (used + piece_length + 4 >= size) break; /* keep room for "..." */
    memcpy(out + used, piece, piece_length + 1);
    used += piece_length;
  }
  if (i < length && used + 3 < size) memcpy(out + used, "...", 4);
}

/* Writes the dotted key path of the node about to be attached, e.g.
 * "pipeline.google_veo.model" or "service.listen[2]". Every open container but
 * the innermost is already its parent's last child. */
static void describe_path(const builder *b, char *path, size_t size) {
  path[0] = '\0';
  for (int level = 0; level < b->depth; level++) {
    const reel_yaml_node *container = b->open[level];
    int innermost = level == b->depth - 1;
    size_t used = strlen(path);
    if (container->kind == REEL_YAML_SEQUENCE) {
      snprintf(path + used, size - used, "[%zu]", innermost ? container->count : container->count - 1);
      continue;
    }
    /* a mapping: the key whose value holds the next level, or the node itself */
    size_t key_index = innermost ? container->count - 1 : container->count - 2;
    if (innermost && container->count % 2 == 0) break; /* the node is a key: the path ends here */
    const reel_yaml_node *key = container->children[key_index];
    if (used && used + 1 < size) memcpy(path + used, ".", 2);
    reel_yaml_append_printable(path, size, key->text, key->length, 64);
  }
}

static int fail(builder *b, unsigned long line, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(builder *b, unsigned long line, const char *format, ...) {
  char message[512];
  va_list ap;
  va_start(ap, format);
  vsnprintf(message, sizeof message, format, ap);
  va_end(ap);
  char path[256];
  describe_path(b, path, sizeof path);
  if (b->err && b->errlen) {
    if (path[0])
      snprintf(b->err, b->errlen, "%s:%lu: %s: %s", b->name, line, path, message);
    else
      snprintf(b->err, b->errlen, "%s:%lu: %s", b->name, line, message);
  }
  return REEL_ECONFIG;
}

static int out_of_memory(builder *b) {
  if (b->err && b->errlen) snprintf(b->err, b->errlen, "%s: out of memory", b->name);
  return REEL_ENOMEM;
}

static unsigned long line_of_offset(const builder *b, size_t offset) {
  unsigned long line = 1;
  if (offset > b->input_length) offset = b->input_length;
  for (size_t i = 0; i < offset; i++)
    if (b->input[i] == '\n') line++;
  return line;
}

static int syntax_error(builder *b, const yaml_parser_t *parser) {
  if (parser->error == YAML_MEMORY_ERROR) return out_of_memory(b);
  unsigned long line = parser->error == YAML_READER_ERROR
                           ? line_of_offset(b, parser->problem_offset)
                           : (unsigned long)parser->problem_mark.line + 1;
  const char *problem = parser->problem ? parser->problem : "malformed YAML";
  if (b->err && b->errlen) {
    if (parser->context && parser->context_mark.line + 1 != line)
      snprintf(b->err, b->errlen, "%s:%lu: YAML syntax error: %s (%s on line %lu)", b->name, line,
               problem, parser->context, (unsigned long)parser->context_mark.line + 1);
    else if (parser->context)
      snprintf(b->err, b->errlen, "%s:%lu: YAML syntax error: %s (%s)", b->name, line, problem,
               parser->context);
    else
      snprintf(b->err, b->errlen, "%s:%lu: YAML syntax error: %s", b->name, line, problem);
  }
  return REEL_ECONFIG;
}

/* Refuses anchors and tags other than the standard one for the node's kind. */
static int check_anchor_and_tag(builder *b, unsigned long line, const yaml_char_t *anchor,
                                const yaml_char_t *tag, const char *standard_tag) {
  if (anchor)
    return fail(b, line, "%s", ALIASES_REFUSED);
  if (tag && strcmp((const char *)tag, standard_tag) != 0 && strcmp((const char *)tag, "!") != 0) {
    char shown[96] = "";
    reel_yaml_append_printable(shown, sizeof shown, (const char *)tag, strlen((const char *)tag), 60);
    return fail(b, line, "YAML tags such as %s are not supported (remove the tag)", shown);
  }
  return 0;
}

static reel_yaml_node *new_node(reel_yaml_kind kind, unsigned long line) {
  reel_yaml_node *node = calloc(1, sizeof *node);
  if (!node) return NULL;
  node->kind = kind;
  node->line = line;
  return node;
}

/* Checks that a node of this kind may go where the parser is now. */
static int check_position(builder *b, reel_yaml_kind kind, unsigned long line) {
  if (b->node_count >= REEL_YAML_MAX_NODES)
    return fail(b, line, "the file has more than %d values (a reel config needs far fewer)",
                REEL_YAML_MAX_NODES);
  if (b->depth == 0) {
    if (b->root) return fail(b, line, "only one YAML document is allowed per file");
    return 0;
  }
  const reel_yaml_node *parent = b->open[b->depth - 1];
  if (parent->kind == REEL_YAML_MAPPING && parent->count % 2 == 0 && kind != REEL_YAML_SCALAR)
    return fail(b, line, "mapping keys must be plain text, not a list or a mapping");
  if (kind != REEL_YAML_SCALAR && b->depth >= REEL_YAML_MAX_DEPTH)
    return fail(b, line, "nested more than %d levels deep", REEL_YAML_MAX_DEPTH);
  return 0;
}

/* Hands node to its parent (or makes it the root). On failure frees it. */
static int attach(builder *b, reel_yaml_node *node) {
  b->node_count++;
  if (b->depth == 0) {
    b->root = node;
    return 0;
  }
  reel_yaml_node *parent = b->open[b->depth - 1];
  if (parent->count == parent->capacity) {
    size_t capacity = parent->capacity ? parent->capacity * 2 : 4;
    reel_yaml_node **children = realloc(parent->children, capacity * sizeof *children);
    if (!children) {
      reel_yaml_free(node);
      return out_of_memory(b);
    }
    parent->children = children;
    parent->capacity = capacity;
  }
  parent->children[parent->count++] = node;
  return 0;
}

static int on_scalar(builder *b, const yaml_event_t *event) {
  unsigned long line = (unsigned long)event->start_mark.line + 1;
  int rc = check_anchor_and_tag(b, line, event->data.scalar.anchor, event->data.scalar.tag, TAG_STRING);
  if (rc) return rc;
  if ((rc = check_position(b, REEL_YAML_SCALAR, line))) return rc;
  reel_yaml_node *node = new_node(REEL_YAML_SCALAR, line);
  if (!node) return out_of_memory(b);
  node->length = event->data.scalar.length;
  node->text = malloc(node->length + 1);
  if (!node->text) {
    reel_yaml_free(node);
    return out_of_memory(b);
  }
  if (node->length) memcpy(node->text, event->data.scalar.value, node->length);
  node->text[node->length] = '\0';
  node->plain = event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !event->data.scalar.tag;
  return attach(b, node);
}

static int on_collection_start(builder *b, const yaml_event_t *event, reel_yaml_kind kind) {
  unsigned long line = (unsigned long)event->start_mark.line + 1;
  int rc = kind == REEL_YAML_SEQUENCE
               ? check_anchor_and_tag(b, line, event->data.sequence_start.anchor,
                                      event->data.sequence_start.tag, TAG_SEQUENCE)
               : check_anchor_and_tag(b, line, event->data.mapping_start.anchor,
                                      event->data.mapping_start.tag, TAG_MAPPING);
  if (rc) return rc;
  if ((rc = check_position(b, kind, line))) return rc;
  reel_yaml_node *node = new_node(kind, line);
  if (!node) return out_of_memory(b);
  if ((rc = attach(b, node))) return rc;
  b->open[b->depth++] = node;
  return 0;
}

/* Feeds one parser event into the tree; sets *done at the end of the stream. */
static int on_event(builder *b, const yaml_event_t *event, int *done) {
  switch (event->type) {
    case YAML_STREAM_END_EVENT:
      *done = 1;
      return 0;
    case YAML_DOCUMENT_START_EVENT:
      if (b->document_count++ > 0)
        return fail(b, (unsigned long)event->start_mark.line + 1,
                    "only one YAML document is allowed per file (remove the second ---)");
      return 0;
    case YAML_ALIAS_EVENT:
      return fail(b, (unsigned long)event->start_mark.line + 1, "%s", ALIASES_REFUSED);
    case YAML_SCALAR_EVENT:
      return on_scalar(b, event);
    case YAML_SEQUENCE_START_EVENT:
      return on_collection_start(b, event, REEL_YAML_SEQUENCE);
    case YAML_MAPPING_START_EVENT:
      return on_collection_start(b, event, REEL_YAML_MAPPING);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      if (b->depth > 0) b->depth--;
      return 0;
    default:
      return 0;
  }
}

int reel_yaml_parse(const char *input, size_t length, const char *name, reel_yaml_node **root,
                    char *err, size_t errlen) {
  builder b = {.name = name, .input = input, .input_length = length, .err = err, .errlen = errlen};
  *root = NULL;
  if (err && errlen) err[0] = '\0';
  if (length > REEL_YAML_MAX_BYTES) {
    if (err && errlen)
      snprintf(err, errlen, "%s: the file is larger than %d KiB (is this the right file?)", name,
               REEL_YAML_MAX_BYTES / 1024);
    return REEL_ECONFIG;
  }
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return out_of_memory(&b);
  yaml_parser_set_input_string(&parser, (const unsigned char *)input, length);
  int rc = 0, done = 0;
  while (!rc && !done) {
    yaml_event_t event;
    if (!yaml_parser_parse(&parser, &event)) {
      rc = syntax_error(&b, &parser);
      break;
    }
    rc = on_event(&b, &event, &done);
    yaml_event_delete(&event);
  }
  yaml_parser_delete(&parser);
  if (rc) {
    reel_yaml_free(b.root);
    return rc;
  }
  *root = b.root;
  return 0;
}

void reel_yaml_free(reel_yaml_node *node) {
  if (!node) return;
  for (size_t i = 0; i < node->count; i++) reel_yaml_free(node->children[i]);
  free(node->children);
  free(node->text);
  free(node);
}
