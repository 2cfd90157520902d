/* reel's HTTP/1.1 front end reads bytes from strangers. This parser turns them
 * into a reel_h1_request without touching a socket, so it can be unit-tested
 * and fuzzed on its own. Where RFC 9112 lets a recipient guess (bare LF,
 * obs-fold, repeated or conflicting framing headers) it refuses instead:
 * request smuggling lives in the gap between two parsers' guesses. Every scan
 * is bounded by len and by the limits, and state kept between calls is offsets,
 * never pointers, so a caller's buffer may move as it grows. */
#include "http/h1_parser.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"

/* RFC 9112 §2.2: a server may skip empty lines before the request-line (some
 * clients send CRLF after a POST body); a few are enough. */
#define MAX_LEADING_EMPTY_LINES 4
/* Sixteen hex digits fit in 64 bits, so a chunk size never overflows. */
#define MAX_CHUNK_SIZE_DIGITS 16
/* Chunk extensions are skipped, but at most this many bytes of them per message
 * (413 beyond), so a tiny body cannot hide megabytes of framing. */
#define MAX_CHUNK_EXTENSION_BYTES 4096
/* Used when reel_h1_request_init gets no limits (reel.yaml's defaults). */
#define DEFAULT_MAX_HEADER_BYTES 16384
#define DEFAULT_MAX_BODY_BYTES 65536

enum { BLOCK_INCOMPLETE = 0, BLOCK_COMPLETE = 1 };

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* OWS and BWS in RFC 9110. */
static int is_whitespace(char c) { return c == ' ' || c == '\t'; }

/* tchar in RFC 9110 §5.6.2. */
static int is_token_char(char c) {
  if (is_digit(c) || is_alpha(c)) return 1;
  switch (c) {
  case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
  case '-': case '.': case '^': case '_': case '`': case '|': case '~':
    return 1;
  default:
    return 0;
  }
}

/* field-vchar, SP and HTAB (RFC 9110 §5.5), obs-text included; every other
 * control character, NUL, CR and LF among them, is refused. */
static int is_field_value_char(char c) {
  unsigned char u = (unsigned char)c;
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

/* Printable ASCII except '#': no controls, spaces, raw non-ASCII bytes (clients
 * percent-encode them) or fragments (never sent in a request-target). */
static int is_target_char(char c) {
  unsigned char u = (unsigned char)c;
  return u > 0x20 && u < 0x7f && u != '#';
}

/* Skips up to MAX_LEADING_EMPTY_LINES CRLFs at the start of data; *start is
 * where the request-line begins. */
static int skip_leading_empty_lines(const char *data, size_t len, size_t *start) {
  size_t pos = 0;
  for (int lines = 0; pos < len && (data[pos] == '\r' || data[pos] == '\n'); lines++) {
    if (lines == MAX_LEADING_EMPTY_LINES || data[pos] == '\n') return REEL_EPARSE;
    if (pos + 1 == len) return REEL_EAGAIN;
    if (data[pos + 1] != '\n') return REEL_EPARSE;
    pos += 2;
  }
  if (pos == len) return REEL_EAGAIN;
  *start = pos;
  return 0;
}

/* Looks in data[from..limit) for the empty line that ends a block of CRLF
 * lines (a head, or a trailer section, which may be that empty line alone),
 * checking on the way that every LF follows a CR and every CR precedes an LF.
 * The scan resumes at *scanned, which is advanced for the next call. Returns
 * BLOCK_COMPLETE with *end just past the empty line, BLOCK_INCOMPLETE, or
 * REEL_EPARSE. Decisions depend on data[..limit) only, so feeding the bytes in
 * pieces gives the same answer as feeding them at once. */
static int find_block_end(const char *data, size_t from, size_t limit, size_t *scanned, size_t *end) {
  for (size_t i = *scanned > from ? *scanned : from; i < limit; i++) {
    if (data[i] == '\r') {
      if (i + 1 < limit && data[i + 1] != '\n') return REEL_EPARSE;
    } else if (data[i] == '\n') {
      if (i == from || data[i - 1] != '\r') return REEL_EPARSE;
      if (i - 1 == from || data[i - 2] == '\n') {
        *end = i + 1;
        return BLOCK_COMPLETE;
      }
    }
  }
  /* Look at the last byte again next time: a CR there has not met its LF yet. */
  *scanned = limit > from ? limit - 1 : from;
  return BLOCK_INCOMPLETE;
}

/* Length of the line at data[pos], without its CRLF (the block's line endings
 * were checked by find_block_end). */
static size_t line_length(const char *data, size_t pos, size_t end) {
  const char *cr = memchr(data + pos, '\r', end - pos);
  return cr ? (size_t)(cr - (data + pos)) : end - pos;
}

/* "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). */
static int parse_version(const char *version, size_t len, int *minor_version) {
  if (len != 8 || memcmp(version, "HTTP/", 5) != 0 || !is_digit(version[5]) || version[6] != '.' ||
      !is_digit(version[7]))
    return REEL_EPARSE;
  if (version[5] == '1' && (version[7] == '0' || version[7] == '1')) {
    *minor_version = version[7] - '0';
    return 0;
  }
  *minor_version = -1;
  return REEL_EUNSUPPORTED;
}

static void split_path_and_query(const char *target, size_t len, reel_h1_request *req) {
  const char *question_mark = memchr(target, '?', len);
  if (!question_mark) {
    req->path = (reel_slice){target, len};
    req->query = (reel_slice){target + len, 0};
    return;
  }
  size_t path_len = (size_t)(question_mark - target);
  req->path = (reel_slice){target, path_len};
  req->query = (reel_slice){question_mark + 1, len - path_len - 1};
}

/* absolute-form, which RFC 9112 §3.2.2 says a server MUST accept: "http://" or
 * "https://" (any case), a non-empty authority without userinfo, then the path
 * and query, which is all reel uses. The authority is not reported: reel is no
 * proxy, and the Host header stays what handlers see. */
static int split_absolute_form(reel_h1_request *req) {
  reel_slice target = req->target;
  size_t scheme_len;
  if (target.len >= 7 && reel_slice_caseeq((reel_slice){target.ptr, 7}, "http://"))
    scheme_len = 7;
  else if (target.len >= 8 && reel_slice_caseeq((reel_slice){target.ptr, 8}, "https://"))
    scheme_len = 8;
  else
    return REEL_EPARSE;
  size_t i = scheme_len;
  while (i < target.len && target.ptr[i] != '/' && target.ptr[i] != '?') {
    if (target.ptr[i] == '@') return REEL_EPARSE;
    i++;
  }
  if (i == scheme_len) return REEL_EPARSE;
  if (i < target.len && target.ptr[i] == '/') {
    split_path_and_query(target.ptr + i, target.len - i, req);
    return 0;
  }
  /* An empty path means "/" (RFC 9110 §4.2.3); point at the scheme's own '/'
   * so that the slice stays inside the caller's buffer. */
  req->path = (reel_slice){target.ptr + scheme_len - 1, 1};
  if (i < target.len)
    req->query = (reel_slice){target.ptr + i + 1, target.len - i - 1};
  else
    req->query = (reel_slice){target.ptr + target.len, 0};
  return 0;
}

/* method SP request-target SP HTTP-version, single spaces only. The version is
 * checked before the target's form, so "PRI * HTTP/2.0" gets its 505. */
static int parse_request_line(const char *line, size_t len, reel_h1_request *req) {
  size_t i = 0;
  while (i < len && is_token_char(line[i])) i++;
  if (i == 0 || i == len || line[i] != ' ') return REEL_EPARSE;
  req->method = (reel_slice){line, i};

  size_t target_start = ++i;
  while (i < len && is_target_char(line[i])) i++;
  if (i == target_start || i == len || line[i] != ' ') return REEL_EPARSE;
  req->target = (reel_slice){line + target_start, i - target_start};
  i++;

  int rc = parse_version(line + i, len - i, &req->minor_version);
  if (rc) return rc;

  if (req->target.ptr[0] == '/') {
    split_path_and_query(req->target.ptr, req->target.len, req);
    return 0;
  }
  if (reel_slice_eq(req->target, "*")) {
    if (!reel_slice_eq(req->method, "OPTIONS")) return REEL_EPARSE;
    req->path = req->target;
    req->query = (reel_slice){req->target.ptr + 1, 0};
    return 0;
  }
  return split_absolute_form(req); /* authority-form (CONNECT) fails here too */
}

/* field-name ":" OWS field-value OWS. A line starting with whitespace is
 * obs-fold (or whitespace before the first field): refused, as is whitespace
 * between the name and the colon (RFC 9112 §5.1). */
static int parse_field_line(const char *line, size_t len, reel_http_header *header) {
  if (len == 0 || is_whitespace(line[0])) return REEL_EPARSE;
  size_t i = 0;
  while (i < len && is_token_char(line[i])) i++;
  if (i == 0 || i == len || line[i] != ':') return REEL_EPARSE;
  header->name = (reel_slice){line, i};
  i++;
  while (i < len && is_whitespace(line[i])) i++;
  size_t value_end = len;
  while (value_end > i && is_whitespace(line[value_end - 1])) value_end--;
  for (size_t j = i; j < value_end; j++)
    if (!is_field_value_char(line[j])) return REEL_EPARSE;
  header->value = (reel_slice){line + i, value_end - i};
  return 0;
}

/* Gives the next element of a comma-separated value, OWS trimmed (empty
 * elements included: "a,,b" gives "a", "", "b"; "" gives ""). Returns 0 when
 * there are no more. */
static int next_list_element(reel_slice list, size_t *pos, reel_slice *element) {
  if (*pos > list.len) return 0;
  size_t start = *pos, end = start;
  while (end < list.len && list.ptr[end] != ',') end++;
  *pos = end + 1;
  while (start < end && is_whitespace(list.ptr[start])) start++;
  while (end > start && is_whitespace(list.ptr[end - 1])) end--;
  *element = (reel_slice){list.ptr + start, end - start};
  return 1;
}

/* 1*DIGIT, or a comma list of identical ones (a recipient may fold repeated
 * Content-Length lines into one, RFC 9110 §8.6). */
static int parse_content_length(reel_slice value, long long *content_length) {
  size_t pos = 0;
  reel_slice element;
  long long result = -1;
  while (next_list_element(value, &pos, &element)) {
    if (element.len == 0) return REEL_EPARSE;
    long long n = 0;
    for (size_t i = 0; i < element.len; i++) {
      if (!is_digit(element.ptr[i])) return REEL_EPARSE;
      int digit = element.ptr[i] - '0';
      if (n > (LLONG_MAX - digit) / 10) return REEL_EPARSE;
      n = n * 10 + digit;
    }
    if (result >= 0 && n != result) return REEL_EPARSE;
    result = n;
  }
  *content_length = result;
  return 0;
}

/* Reads framing, persistence and expectations from the headers. */
static int apply_headers(reel_h1_request *req) {
  int has_transfer_encoding = 0, chunked_codings = 0, last_coding_is_chunked = 0, unknown_coding = 0;
  int connection_close = 0, connection_keep_alive = 0, hosts = 0;
  req->content_length = -1;
  req->chunked = 0;
  req->keep_alive = 0;
  req->expect_continue = 0;

  for (int i = 0; i < req->n_headers; i++) {
    reel_slice name = req->headers[i].name, value = req->headers[i].value, element;
    size_t pos = 0;
    if (reel_slice_caseeq(name, "Content-Length")) {
      long long content_length;
      int rc = parse_content_length(value, &content_length);
      if (rc) return rc;
      if (req->content_length >= 0 && content_length != req->content_length) return REEL_EPARSE;
      req->content_length = content_length;
    } else if (reel_slice_caseeq(name, "Transfer-Encoding")) {
      /* Repeated lines form one list; empty elements are ignored (RFC 9110 §5.6.1). */
      has_transfer_encoding = 1;
      while (next_list_element(value, &pos, &element)) {
        if (element.len == 0) continue;
        last_coding_is_chunked = reel_slice_caseeq(element, "chunked");
        if (last_coding_is_chunked)
          chunked_codings++;
        else
          unknown_coding = 1;
      }
    } else if (reel_slice_caseeq(name, "Connection")) {
      while (next_list_element(value, &pos, &element)) {
        if (reel_slice_caseeq(element, "close")) connection_close = 1;
        if (reel_slice_caseeq(element, "keep-alive")) connection_keep_alive = 1;
      }
    } else if (reel_slice_caseeq(name, "Expect")) {
      while (next_list_element(value, &pos, &element))
        if (reel_slice_caseeq(element, "100-continue")) req->expect_continue = 1;
    } else if (reel_slice_caseeq(name, "Host")) {
      hosts++;
    }
  }

  /* RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host or any request with two. */
  if (hosts > 1 || (hosts == 0 && req->minor_version == 1)) return REEL_EPARSE;
  if (has_transfer_encoding) {
    if (req->content_length >= 0) return REEL_EPARSE;
    /* RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing. */
    if (req->minor_version == 0) return REEL_EPARSE;
    if (unknown_coding) return REEL_EUNSUPPORTED;
    /* No coding at all, or chunked applied twice. */
    if (chunked_codings != 1 || !last_coding_is_chunked) return REEL_EPARSE;
    req->chunked = 1;
  }
  if (req->minor_version == 1)
    req->keep_alive = !connection_close;
  else
    req->keep_alive = connection_keep_alive && !connection_close;
  /* RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored. */
  if (req->minor_version == 0) req->expect_continue = 0;
  return 0;
}

/* Parses the head in data[start..end), which find_block_end delimited. */
static int parse_head_block(const char *data, size_t start, size_t end, reel_h1_request *req) {
  size_t line_len = line_length(data, start, end);
  int rc = parse_request_line(data + start, line_len, req);
  if (rc) return rc;
  req->n_headers = 0;
  size_t pos = start + line_len + 2;
  while (pos + 2 < end) { /* the block's last line, at end - 2, is the empty one */
    line_len = line_length(data, pos, end);
    reel_http_header header;
    rc = parse_field_line(data + pos, line_len, &header);
    if (rc) return rc;
    if (req->n_headers == REEL_H1_MAX_HEADERS) return REEL_EHEADERS_TOO_LARGE;
    req->headers[req->n_headers++] = header;
    pos += line_len + 2;
  }
  return apply_headers(req);
}

enum { LINE_METHOD, LINE_TARGET, LINE_VERSION, LINE_DONE };

/* Checks the request-line of an incomplete head in data[from..limit)
 * (resuming where the last call stopped), so that bytes which cannot start a
 * request (a NUL, a TLS ClientHello, text that is not "token SP target SP
 * HTTP/d.d") are refused at once instead of waiting for header_timeout.
 * Returns 0 (could still be valid) or REEL_EPARSE, which is then the answer
 * the whole head would get too (parse_request_line checks the same things in
 * the same order; a well-formed but unsupported version is left to it).
 * Work is linear over all calls. */
static int check_partial_head(const char *data, size_t start, size_t limit, reel_h1_request *req) {
  static const char version[] = "HTTP/d.d";
  size_t i = req->partial_checked_ > start ? req->partial_checked_ : start;
  for (; i < limit && req->line_part_ != LINE_DONE; i++) {
    char c = data[i];
    size_t at = i - start; /* offset in the request-line */
    if (req->line_part_ == LINE_METHOD) {
      if (c == ' ' && at > 0) req->line_part_ = LINE_TARGET, req->partial_checked_ = i + 1;
      else if (!is_token_char(c)) return REEL_EPARSE;
    } else if (req->line_part_ == LINE_TARGET) {
      if (c == ' ' && data[i - 1] != ' ') req->line_part_ = LINE_VERSION, req->partial_checked_ = i + 1;
      else if (!is_target_char(c)) return REEL_EPARSE;
    } else {
      size_t k = i - req->partial_checked_;
      if (k == sizeof version - 1) {
        if (c != '\r') return REEL_EPARSE;
        req->line_part_ = LINE_DONE;
      } else if (version[k] == 'd' ? !is_digit(c) : c != version[k]) {
        return REEL_EPARSE;
      }
      continue; /* partial_checked_ marks where the version began */
    }
  }
  if (req->line_part_ != LINE_VERSION) req->partial_checked_ = limit;
  return 0;
}

/* Finds and parses the head. The head is counted from data[0] (skipped empty
 * lines included) and may not pass max_header_bytes, which is known as soon
 * as that many bytes are in without its end. */
static int read_head(const char *data, size_t len, reel_h1_request *req) {
  size_t max = req->max_header_bytes_;
  size_t start = 0, end = 0;
  int rc = skip_leading_empty_lines(data, len, &start);
  if (rc == 0) {
    size_t limit = len < max ? len : max;
    rc = find_block_end(data, start, limit, &req->head_scanned_, &end);
    if (rc == BLOCK_INCOMPLETE) rc = check_partial_head(data, start, limit, req) ? REEL_EPARSE : REEL_EAGAIN;
    if (rc == BLOCK_COMPLETE) rc = 0;
  }
  if (rc == REEL_EAGAIN) return len >= max ? REEL_EHEADERS_TOO_LARGE : REEL_EAGAIN;
  if (rc) return rc;
  rc = parse_head_block(data, start, end, req);
  if (rc) return rc;
  req->head_complete = 1;
  req->head_len_ = end;
  req->head_data_ = (uintptr_t)data;
  return 0;
}

static int request_used(size_t used) { return used > INT_MAX ? REEL_ETOOBIG : (int)used; }

static int read_sized_body(const char *data, size_t len, reel_h1_request *req) {
  if (req->content_length <= 0) return request_used(req->head_len_);
  if ((unsigned long long)req->content_length > req->body.max) return REEL_ETOOBIG;
  size_t body_len = (size_t)req->content_length;
  if (len - req->head_len_ < body_len) return REEL_EAGAIN;
  reel_buf_reset(&req->body);
  int rc = reel_buf_append(&req->body, data + req->head_len_, body_len);
  if (rc) return rc;
  return request_used(req->head_len_ + body_len);
}

typedef struct {
  unsigned long long size;
  size_t data_start;      /* just past the line's CRLF */
  size_t extension_bytes; /* from the last size digit to the CR */
} chunk_size_line;

/* chunk-size [ chunk-ext ] CRLF at data[pos]. Extensions are skipped without
 * parsing their names and values, but must start with ';' (after optional
 * whitespace), hold no control characters and fit in extension_budget. */
static int parse_chunk_size_line(const char *data, size_t len, size_t pos, size_t extension_budget,
                                 chunk_size_line *line) {
  size_t i = pos;
  unsigned long long size = 0;
  while (i < len && hex_value(data[i]) >= 0) {
    if (i - pos == MAX_CHUNK_SIZE_DIGITS) return REEL_EPARSE;
    size = size * 16 + (unsigned)hex_value(data[i]);
    i++;
  }
  if (i == len) return REEL_EAGAIN;
  if (i == pos) return REEL_EPARSE;

  size_t extension_start = i;
  int seen_semicolon = 0;
  while (i < len && data[i] != '\r') {
    if (i - extension_start == extension_budget) return REEL_ETOOBIG;
    if (!is_field_value_char(data[i])) return REEL_EPARSE;
    if (!seen_semicolon) {
      if (data[i] == ';')
        seen_semicolon = 1;
      else if (!is_whitespace(data[i]))
        return REEL_EPARSE;
    }
    i++;
  }
  if (i == len) return REEL_EAGAIN;
  if (i - extension_start > 0 && !seen_semicolon) return REEL_EPARSE; /* "5 " */
  if (i + 1 == len) return REEL_EAGAIN;
  if (data[i + 1] != '\n') return REEL_EPARSE;
  line->size = size;
  line->data_start = i + 2;
  line->extension_bytes = i - extension_start;
  return 0;
}

/* The trailer section after the last chunk at data[from]: field lines checked
 * like headers, capped at max_header_bytes (431 beyond), then discarded. */
static int read_trailers(const char *data, size_t len, size_t from, reel_h1_request *req) {
  size_t max = req->max_header_bytes_;
  size_t limit = len - from < max ? len : from + max;
  size_t end = 0;
  int rc = find_block_end(data, from, limit, &req->trailer_scanned_, &end);
  if (rc < 0) return rc;
  if (rc == BLOCK_INCOMPLETE) return len - from >= max ? REEL_EHEADERS_TOO_LARGE : REEL_EAGAIN;
  for (size_t pos = from; pos + 2 < end;) {
    size_t line_len = line_length(data, pos, end);
    reel_http_header trailer;
    rc = parse_field_line(data + pos, line_len, &trailer);
    if (rc) return rc;
    pos += line_len + 2;
  }
  return request_used(end);
}

/* Decodes chunk after chunk into req->body. A chunk is appended only once its
 * data and CRLF are all in, and chunk_resume_ then moves past it, so a later
 * call starts at the first chunk not yet decoded. */
static int read_chunked_body(const char *data, size_t len, reel_h1_request *req) {
  size_t pos = req->chunk_resume_ ? req->chunk_resume_ : req->head_len_;
  if (pos > len) return REEL_EINVAL;
  /* Bounded: each pass moves pos forward by at least 4 bytes of data[..len). */
  for (;;) {
    chunk_size_line line;
    int rc = parse_chunk_size_line(data, len, pos,
                                   MAX_CHUNK_EXTENSION_BYTES - req->chunk_extension_bytes_, &line);
    if (rc) return rc;
    if (line.size == 0) return read_trailers(data, len, line.data_start, req);
    if (line.size > req->body.max - req->body.len) return REEL_ETOOBIG;
    size_t size = (size_t)line.size;
    if (len - line.data_start < size) return REEL_EAGAIN;
    size_t data_end = line.data_start + size;
    if (data_end < len && data[data_end] != '\r') return REEL_EPARSE;
    if (len - data_end < 2) return REEL_EAGAIN;
    if (data[data_end + 1] != '\n') return REEL_EPARSE;
    rc = reel_buf_append(&req->body, data + line.data_start, size);
    if (rc) return rc;
    req->chunk_extension_bytes_ += line.extension_bytes;
    pos = data_end + 2;
    req->chunk_resume_ = pos;
  }
}

void reel_h1_request_init(reel_h1_request *req, const reel_h1_limits *limits) {
  memset(req, 0, sizeof *req);
  req->minor_version = -1;
  req->content_length = -1;
  req->max_header_bytes_ = limits ? limits->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
  reel_buf_init(&req->body, limits ? limits->max_body_bytes : DEFAULT_MAX_BODY_BYTES);
}

void reel_h1_request_free(reel_h1_request *req) { reel_buf_free(&req->body); }

int reel_h1_parse_request(const char *data, size_t len, reel_h1_request *req) {
  int rc;
  if (!req->head_complete) {
    rc = read_head(data, len, req);
    if (rc) return rc;
  } else if (len < req->head_len_) {
    return REEL_EINVAL;
  } else if ((uintptr_t)data != req->head_data_) {
    /* The buffer moved (it grew by realloc, say): point the slices into it. */
    req->head_complete = 0;
    req->head_scanned_ = 0;
    rc = read_head(data, req->head_len_, req);
    if (rc) return rc == REEL_EAGAIN ? REEL_EINVAL : rc;
  }
  return req->chunked ? read_chunked_body(data, len, req) : read_sized_body(data, len, req);
}

reel_slice reel_h1_header(const reel_h1_request *req, const char *name) {
  for (int i = 0; i < req->n_headers; i++)
    if (reel_slice_caseeq(req->headers[i].name, name)) return req->headers[i].value;
  return (reel_slice){NULL, 0};
}
