/* AWS SigV4 (storage/sigv4): encoding and canonical forms, key derivation,
 * the examples of AWS's S3 documentation, presigned URLs (expected values
 * computed with boto3 1.26 / botocore 1.29) and POST policies. */
#include <gnutls/crypto.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "storage/sigv4.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T_2024 1714979289 /* 2024-05-06T07:08:09Z */

/* Runs one of the string-returning steps and checks its result (NULL: expects err). */
#define CHECK_STEP(call, expected_rc, expected)  \
  do {                                           \
    char *out_ = NULL;                           \
    CHECK_INT(call, expected_rc);                \
    if ((expected_rc) == 0) CHECK_STR(out_, expected); \
    else CHECK(out_ == NULL);                    \
    reel_sigv4_free(out_);                       \
  } while (0)

static void test_uri_encode(void) {
  CHECK_STEP(reel_sigv4_uri_encode("a b/c~d+\xc3\xa9", 10, 1, &out_), 0, "a%20b/c~d%2B%C3%A9");
  CHECK_STEP(reel_sigv4_uri_encode("a b/c~d+\xc3\xa9", 10, 0, &out_), 0, "a%20b%2Fc~d%2B%C3%A9");
  CHECK_STEP(reel_sigv4_uri_encode("-._~AZaz09", 10, 0, &out_), 0, "-._~AZaz09");
  CHECK_STEP(reel_sigv4_uri_encode("%=&;:*", 6, 0, &out_), 0, "%25%3D%26%3B%3A%2A");
  CHECK_STEP(reel_sigv4_uri_encode("", 0, 0, &out_), 0, "");
}

static void test_canonical_uri(void) {
  /* generic services: normalized, then encoded once more than sent */
  CHECK_STEP(reel_sigv4_canonical_uri("/example space/", 1, 1, &out_), 0, "/example%20space/");
  CHECK_STEP(reel_sigv4_canonical_uri("/a%2Fb", 0, 1, &out_), 0, "/a%252Fb");
  CHECK_STEP(reel_sigv4_canonical_uri("//example//", 1, 1, &out_), 0, "/example/");
  CHECK_STEP(reel_sigv4_canonical_uri("//example//", 0, 1, &out_), 0, "//example//");
  CHECK_STEP(reel_sigv4_canonical_uri("/a/b/../c/./d", 1, 1, &out_), 0, "/a/c/d");
  CHECK_STEP(reel_sigv4_canonical_uri("/a/b/..", 1, 1, &out_), 0, "/a");
  CHECK_STEP(reel_sigv4_canonical_uri("/../..", 1, 1, &out_), 0, "/");
  CHECK_STEP(reel_sigv4_canonical_uri("/./", 1, 1, &out_), 0, "/");
  CHECK_STEP(reel_sigv4_canonical_uri("/./", 0, 1, &out_), 0, "/./");
  CHECK_STEP(reel_sigv4_canonical_uri("", 1, 1, &out_), 0, "/");
  CHECK_STEP(reel_sigv4_canonical_uri("/\xe1\x88\xb4", 1, 1, &out_), 0, "/%E1%88%B4");
  /* S3: as sent, only what needs it encoded, escapes kept */
  CHECK_STEP(reel_sigv4_canonical_uri("/a%2Fb/c%24d", 0, 0, &out_), 0, "/a%2Fb/c%24d");
  CHECK_STEP(reel_sigv4_canonical_uri("/a b/../c", 0, 0, &out_), 0, "/a%20b/../c");
  CHECK_STEP(reel_sigv4_canonical_uri("/100%", 0, 0, &out_), 0, "/100%25");
  /* rejected */
  CHECK_STEP(reel_sigv4_canonical_uri("relative", 0, 1, &out_), REEL_EINVAL, NULL);
  CHECK_STEP(reel_sigv4_canonical_uri("/a\nb", 0, 1, &out_), REEL_EINVAL, NULL);
  CHECK_STEP(reel_sigv4_canonical_uri("/a?b", 0, 1, &out_), REEL_EINVAL, NULL);
  char *long_path = malloc(REEL_SIGV4_MAX_PATH + 2);
  memset(long_path, 'a', REEL_SIGV4_MAX_PATH + 1);
  long_path[0] = '/';
  long_path[REEL_SIGV4_MAX_PATH + 1] = '\0';
  CHECK_STEP(reel_sigv4_canonical_uri(long_path, 0, 1, &out_), REEL_ETOOBIG, NULL);
  free(long_path);
}

static void test_canonical_query(void) {
  CHECK_STEP(reel_sigv4_canonical_query("Param2=value2&Param1=value1", &out_), 0, "Param1=value1&Param2=value2");
  CHECK_STEP(reel_sigv4_canonical_query("a=2&a=1&a=10", &out_), 0, "a=1&a=10&a=2"); /* then by value */
  CHECK_STEP(reel_sigv4_canonical_query("b&a=", &out_), 0, "a=&b=");                /* empty values kept */
  CHECK_STEP(reel_sigv4_canonical_query("&&a=1&", &out_), 0, "a=1");                /* empty pieces dropped */
  CHECK_STEP(reel_sigv4_canonical_query("=x", &out_), 0, "=x");
  /* sorted by encoded name: '%' (0x25) before 'P'; "Param" before "Param-3" */
  CHECK_STEP(reel_sigv4_canonical_query("Param-3=Value3&Param=Value2&%E1%88%B4=Value1", &out_), 0,
             "%E1%88%B4=Value1&Param=Value2&Param-3=Value3");
  CHECK_STEP(reel_sigv4_canonical_query("\xe1\x88\xb4=bar", &out_), 0, "%E1%88%B4=bar");
  CHECK_STEP(reel_sigv4_canonical_query("k=%2f%7E", &out_), 0, "k=%2F~"); /* decoded, re-encoded */
  CHECK_STEP(reel_sigv4_canonical_query("k=a+b c", &out_), 0, "k=a%2Bb%20c"); /* '+' is not a space */
  CHECK_STEP(reel_sigv4_canonical_query("k=a=b", &out_), 0, "k=a%3Db");
  CHECK_STEP(reel_sigv4_canonical_query("k=%zz%4", &out_), 0, "k=%25zz%254"); /* stray '%' is literal */
  CHECK_STEP(reel_sigv4_canonical_query("", &out_), 0, "");
  CHECK_STEP(reel_sigv4_canonical_query(NULL, &out_), 0, "");
  CHECK_STEP(reel_sigv4_canonical_query("a=1#frag", &out_), REEL_EINVAL, NULL);
}

static void test_header_values(void) {
  CHECK_STEP(reel_sigv4_canonical_header_value("  a   b  ", &out_), 0, "a b");
  CHECK_STEP(reel_sigv4_canonical_header_value("value1\n  value2\n     value3", &out_), 0, "value1 value2 value3");
  CHECK_STEP(reel_sigv4_canonical_header_value("a\r\n\tb", &out_), 0, "a b");
  CHECK_STEP(reel_sigv4_canonical_header_value("\"a   b   c\"", &out_), 0, "\"a b c\"");
  CHECK_STEP(reel_sigv4_canonical_header_value("a\t\tb", &out_), 0, "a b");
  CHECK_STEP(reel_sigv4_canonical_header_value("VALUE1", &out_), 0, "VALUE1");
  CHECK_STEP(reel_sigv4_canonical_header_value("", &out_), 0, "");
  CHECK_STEP(reel_sigv4_canonical_header_value("a\nb", &out_), REEL_EINVAL, NULL);   /* not a fold */
  CHECK_STEP(reel_sigv4_canonical_header_value("a\rb", &out_), REEL_EINVAL, NULL);
  CHECK_STEP(reel_sigv4_canonical_header_value("a\n", &out_), REEL_EINVAL, NULL);
  CHECK_STEP(reel_sigv4_canonical_header_value("a\x01", &out_), REEL_EINVAL, NULL);
}

static void test_signing_key(void) {
  unsigned char key[32];
  char hex[65];
  CHECK_INT(reel_sigv4_signing_key(SECRET, "20150830", "us-east-1", "iam", key), 0);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
  CHECK_STR(hex, "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
  CHECK_INT(reel_sigv4_signing_key(SECRET, "2015083", "us-east-1", "iam", key), REEL_EINVAL);
  CHECK_INT(reel_sigv4_signing_key(SECRET, "20150830", "us east", "iam", key), REEL_EINVAL);
  CHECK_INT(reel_sigv4_signing_key("", "20150830", "us-east-1", "iam", key), REEL_EINVAL);
  CHECK_INT(reel_sigv4_payload_hash("", 0, hex), 0);
  CHECK_STR(hex, REEL_SIGV4_EMPTY_SHA256);
  CHECK_INT(reel_sigv4_payload_hash("Welcome to Amazon S3.", 21, hex), 0);
  CHECK_STR(hex, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
}

/* The suite's get-header-key-duplicate and get-header-value-multiline, through the full signer. */
static void test_sign_generic(void) {
  reel_sigv4_signer signer = {{AKID, SECRET, NULL}, "us-east-1", "service"};
  reel_sigv4_options opt = {.form = REEL_SIGV4_FORM_HEADERS, .time = 1440938160, .normalize_path = 1,
                            .double_encode_path = 1};
  reel_sigv4_header dup[] = {{"Host", "example.amazonaws.com"},
                             {"My-Header1", "value2"},
                             {"My-Header1", "value2"},
                             {"My-Header1", "value1"},
                             {"User-Agent", "not signed"}};
  reel_sigv4_request req = {"GET", NULL, "/", NULL, dup, 5, REEL_SIGV4_EMPTY_SHA256};
  reel_sigv4_result r;
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), 0);
  CHECK_STR(r.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\n"
            "host;my-header1;x-amz-date\n" REEL_SIGV4_EMPTY_SHA256);
  CHECK_STR(r.signature, "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
  CHECK_STR(r.credential_scope, "20150830/us-east-1/service/aws4_request");
  CHECK_INT(r.added.count, 2);
  CHECK_STR(r.added.items[0].name, "X-Amz-Date");
  CHECK_STR(r.added.items[1].name, "Authorization");
  CHECK(r.query == NULL);
  reel_sigv4_result_free(&r);

  reel_sigv4_header folded[] = {{"Host", "example.amazonaws.com"}, {"My-Header1", "value1\n  value2\n     value3"}};
  req.headers = folded;
  req.header_count = 2;
  opt.form = REEL_SIGV4_FORM_QUERY;
  opt.expires = 3600;
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), 0);
  CHECK_STR(r.signature, "e6f5def831211aca02987a44b96826706278c7bc078112ae0263659c5b2f2d56");
  CHECK_STR(r.query, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice"
                     "%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host%3Bmy-header1&X-Amz-Expires="
                     "3600&X-Amz-Signature=e6f5def831211aca02987a44b96826706278c7bc078112ae0263659c5b2f2d56");
  char *text = NULL;
  size_t text_len = 0;
  CHECK_INT(reel_sigv4_format_signed_request(&req, &r, "", 0, &text, &text_len), 0);
  CHECK(text && strncmp(text, "GET /?X-Amz-Algorithm=", 22) == 0);
  CHECK(text && strstr(text, " HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\n  value2\n     value3\n\n"));
  CHECK_INT(text_len, text ? strlen(text) : 0);
  reel_sigv4_free(text);
  reel_sigv4_result_free(&r);

  /* omit_session_token: sent, not signed */
  reel_sigv4_signer with_token = {{AKID, SECRET, "TOKEN/+="}, "us-east-1", "service"};
  reel_sigv4_header host[] = {{"Host", "example.amazonaws.com"}};
  reel_sigv4_request post = {"POST", NULL, "/", NULL, host, 1, REEL_SIGV4_EMPTY_SHA256};
  opt.omit_session_token = 1;
  CHECK_INT(reel_sigv4_sign(&with_token, &opt, &post, &r), 0);
  CHECK(strstr(r.canonical_request, "Token") == NULL);
  CHECK_STR(reel_sigv4_fields_get(&r.added, "X-Amz-Security-Token"), "TOKEN%2F%2B%3D");
  reel_sigv4_result_free(&r);
  opt.form = REEL_SIGV4_FORM_HEADERS;
  CHECK_INT(reel_sigv4_sign(&with_token, &opt, &post, &r), 0);
  CHECK_STR(r.signature, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"); /* = post-vanilla */
  CHECK_STR(r.added.items[0].name, "X-Amz-Security-Token");
  CHECK_STR(r.added.items[0].value, "TOKEN/+=");
  reel_sigv4_result_free(&r);
  opt.omit_session_token = 0;
  CHECK_INT(reel_sigv4_sign(&with_token, &opt, &post, &r), 0);
  CHECK(strstr(r.canonical_request, "\nx-amz-security-token:TOKEN/+=\n") != NULL);
  CHECK_STR(r.signed_headers, "host;x-amz-date;x-amz-security-token");
  reel_sigv4_result_free(&r);
}

static void test_sign_rejects(void) {
  reel_sigv4_signer signer = {{AKID, SECRET, "tok"}, "us-east-1", "service"};
  reel_sigv4_options opt = {.form = REEL_SIGV4_FORM_QUERY, .time = 1440938160, .expires = 3600};
  reel_sigv4_header h[] = {{"Host", "example.amazonaws.com"}, {"X", "y"}};
  reel_sigv4_request req = {"GET", NULL, "/", NULL, h, 1, REEL_SIGV4_EMPTY_SHA256};
  reel_sigv4_result r;
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), 0);
  reel_sigv4_result_free(&r);
  reel_sigv4_result_free(&r); /* a freed result can be freed again */
  req.query = "X-Amz-Signature=abc";
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
  CHECK(r.canonical_request == NULL);
  req.query = "x-amz-security-token=abc";
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
  req.query = NULL;
  opt.expires = 0;
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
  opt.expires = REEL_SIGV4_MAX_EXPIRES + 1;
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
  opt.expires = REEL_SIGV4_MAX_EXPIRES;
  opt.time = -1;
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
  opt.time = 1440938160;
  struct {
    const char *name, *value;
    int rc;
  } bad[] = {
      {"Authorization", "x", REEL_EINVAL},  {"X-Amz-Date", "x", REEL_EINVAL},
      {"x-amz-security-token", "x", REEL_EINVAL}, {"Host", "again", REEL_EINVAL},
      {"Bad Name", "x", REEL_EINVAL},       {"X-Split", "a\r\nInjected: 1", REEL_EINVAL},
      {"", "x", REEL_EINVAL},
  };
  req.header_count = 2;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    h[1].name = bad[i].name;
    h[1].value = bad[i].value;
    CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), bad[i].rc);
  }
  h[0].name = "Content-Type"; /* no Host at all */
  h[1].name = "X";
  h[1].value = "y";
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
  h[0].name = "Host";
  req.payload_hash = "not a hash";
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
  req.payload_hash = REEL_SIGV4_UNSIGNED_PAYLOAD;
  req.header_count = REEL_SIGV4_MAX_HEADERS + 1;
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_ETOOBIG);
  req.header_count = 2;
  signer.credentials.access_key_id = "AKID/EVIL";
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
  signer.credentials.access_key_id = AKID;
  signer.region = "us-east-1\n";
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
  signer.region = "us-east-1";
  req.method = "GET /";
  CHECK_INT(reel_sigv4_sign(&signer, &opt, &req, &r), REEL_EINVAL);
}

/* AWS S3 documentation, "Signature Calculations for the Authorization Header:
 * Transferring Payload in a Single Chunk": the GET and PUT examples. */
static void test_sign_headers_s3_examples(void) {
  reel_sigv4_signer signer = {{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL},
                              "us-east-1", "s3"};
  reel_sigv4_header range[] = {{"Range", "bytes=0-9"}};
  reel_sigv4_request get = {"GET", "examplebucket.s3.amazonaws.com", "/test.txt", NULL, range, 1,
                            REEL_SIGV4_EMPTY_SHA256};
  reel_sigv4_fields f;
  CHECK_INT(reel_sigv4_sign_headers(&signer, &get, 1369353600, &f), 0);
  CHECK_INT(f.count, 3);
  CHECK_STR(f.items[0].name, "X-Amz-Date");
  CHECK_STR(f.items[0].value, "20130524T000000Z");
  CHECK_STR(f.items[1].name, "x-amz-content-sha256");
  CHECK_STR(f.items[1].value, REEL_SIGV4_EMPTY_SHA256);
  CHECK_STR(f.items[2].name, "Authorization");
  CHECK_STR(f.items[2].value, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                              "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                              "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  reel_sigv4_fields_free(&f);
  CHECK_INT(f.count, 0);

  reel_sigv4_header put_headers[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                                     {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  reel_sigv4_request put = {"PUT", "examplebucket.s3.amazonaws.com", "/test%24file.text", NULL, put_headers, 2,
                            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"};
  CHECK_INT(reel_sigv4_sign_headers(&signer, &put, 1369353600, &f), 0);
  const char *auth = reel_sigv4_fields_get(&f, "authorization");
  CHECK(auth && strstr(auth, "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
                             "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"));
  reel_sigv4_fields_free(&f);

  /* with a session token, the token header comes first */
  signer.credentials.session_token = "session";
  CHECK_INT(reel_sigv4_sign_headers(&signer, &get, 1369353600, &f), 0);
  CHECK_INT(f.count, 4);
  CHECK_STR(f.items[0].name, "X-Amz-Security-Token");
  CHECK_STR(f.items[0].value, "session");
  reel_sigv4_fields_free(&f);
  /* the caller may not bring x-amz-content-sha256 to S3: the signer adds it */
  reel_sigv4_header dup[] = {{"x-amz-content-sha256", REEL_SIGV4_EMPTY_SHA256}};
  get.headers = dup;
  CHECK_INT(reel_sigv4_sign_headers(&signer, &get, 1369353600, &f), REEL_EINVAL);
  CHECK_INT(f.count, 0);
}

static reel_sigv4_s3_config s3_config(const char *endpoint, int virtual_hosted) {
  reel_sigv4_s3_config cfg = {endpoint, "us-east-1", virtual_hosted, {AKID, SECRET, NULL}};
  return cfg;
}

#define BOTO_QUERY(signed_headers)                                                                            \
  "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20240506%2Fus-east-1%2Fs3%2Faws4_request" \
  "&X-Amz-Date=20240506T070809Z&X-Amz-Expires=900&X-Amz-SignedHeaders=" signed_headers "&X-Amz-Signature="

static void test_presign(void) {
  char *url = NULL;
  reel_sigv4_s3_presign_request get = {"GET", "my-bucket", "a b/c+d~e.mp4", T_2024, 900, NULL, 0};
  /* path-style; an IP endpoint stays path-style even when virtual-hosted is asked for */
  for (int virtual_hosted = 0; virtual_hosted <= 1; virtual_hosted++) {
    reel_sigv4_s3_config cfg = s3_config("http://127.0.0.1:9000", virtual_hosted);
    CHECK_INT(reel_sigv4_s3_presign_url(&cfg, &get, &url), 0);
    CHECK_STR(url, "http://127.0.0.1:9000/my-bucket/a%20b/c%2Bd~e.mp4" BOTO_QUERY("host")
                   "53806ee9631aa276cad0f7297d266d91839ebb737755b01181016783d5609597");
    reel_sigv4_free(url);
  }
  reel_sigv4_s3_config aws = s3_config("https://s3.us-east-1.amazonaws.com", 1);
  CHECK_INT(reel_sigv4_s3_presign_url(&aws, &get, &url), 0);
  CHECK_STR(url, "https://my-bucket.s3.us-east-1.amazonaws.com/a%20b/c%2Bd~e.mp4" BOTO_QUERY("host")
                 "509204280900746c594841cf6f9745d3d031134177aa59345151adcd1dd94f14");
  reel_sigv4_free(url);
  reel_sigv4_s3_config local = s3_config("http://minio.local:9000/", 1);
  CHECK_INT(reel_sigv4_s3_presign_url(&local, &get, &url), 0);
  CHECK_STR(url, "http://my-bucket.minio.local:9000/a%20b/c%2Bd~e.mp4" BOTO_QUERY("host")
                 "be8f50274e6e006f8e5aaaf4272e41f6cc3b9b077413bc5b38bbcc4d619a66a2");
  reel_sigv4_free(url);
  /* a default port stays in the URL but not in the signed Host */
  reel_sigv4_s3_config port443 = s3_config("https://s3.eu-west-1.amazonaws.com:443", 0);
  CHECK_INT(reel_sigv4_s3_presign_url(&port443, &get, &url), 0);
  CHECK_STR(url, "https://s3.eu-west-1.amazonaws.com:443/my-bucket/a%20b/c%2Bd~e.mp4" BOTO_QUERY("host")
                 "07635b9bcb6c3adbffa6c522958879e09920cb639681f3ef306617d281a138f9");
  reel_sigv4_free(url);

  /* PUT with a Content-Type the client must send */
  reel_sigv4_header content_type[] = {{"Content-Type", "video/mp4"}};
  reel_sigv4_s3_presign_request put = {"PUT", "my-bucket", "x/y.mp4", T_2024, 900, content_type, 1};
  reel_sigv4_s3_config path = s3_config("http://127.0.0.1:9000", 0);
  CHECK_INT(reel_sigv4_s3_presign_url(&path, &put, &url), 0);
  CHECK_STR(url, "http://127.0.0.1:9000/my-bucket/x/y.mp4" BOTO_QUERY("content-type%3Bhost")
                 "55802f9b2c176d0414b9ebe30f002a47ee8b4049d96253c066d50ce19292053d");
  reel_sigv4_free(url);
  CHECK_INT(reel_sigv4_s3_presign_url(&aws, &put, &url), 0);
  CHECK_STR(url, "https://my-bucket.s3.us-east-1.amazonaws.com/x/y.mp4" BOTO_QUERY("content-type%3Bhost")
                 "aa1996c45e02ffb803023b8a894eaaa0300ce525abfcccbd8d9878ea52fed1d2");
  reel_sigv4_free(url);

  /* AWS S3 documentation, "Authenticating Requests: Using Query Parameters" */
  reel_sigv4_s3_config doc = {"https://s3.amazonaws.com", "us-east-1", 1,
                              {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL}};
  reel_sigv4_s3_presign_request doc_get = {"GET", "examplebucket", "test.txt", 1369353600, 86400, NULL, 0};
  CHECK_INT(reel_sigv4_s3_presign_url(&doc, &doc_get, &url), 0);
  CHECK_STR(url, "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                 "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                 "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                 "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  reel_sigv4_free(url);

  /* session token: after SignedHeaders, before Signature */
  reel_sigv4_s3_config token = s3_config("http://127.0.0.1:9000", 0);
  token.credentials.session_token = "tok/en=";
  CHECK_INT(reel_sigv4_s3_presign_url(&token, &get, &url), 0);
  CHECK(url && strstr(url, "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok%2Fen%3D&X-Amz-Signature="));
  reel_sigv4_free(url);

  /* rejected */
  struct {
    const char *method, *bucket, *key;
    int64_t expires;
  } bad[] = {
      {"DELETE", "my-bucket", "k", 900}, {"GET", "my-bucket", "", 900},      {"GET", "my-bucket", "a/../b", 900},
      {"GET", "my-bucket", "a/./b", 900}, {"GET", "my-bucket", "a\nb", 900}, {"GET", "my-bucket", "k", 0},
      {"GET", "my-bucket", "k", REEL_SIGV4_MAX_EXPIRES + 1},                 {"GET", "My_Bucket", "k", 900},
      {"GET", "b", "k", 900},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    reel_sigv4_s3_presign_request r = {bad[i].method, bad[i].bucket, bad[i].key, T_2024, bad[i].expires, NULL, 0};
    CHECK_INT(reel_sigv4_s3_presign_url(&aws, &r, &url), REEL_EINVAL);
    CHECK(url == NULL);
  }
  const char *bad_endpoints[] = {"ftp://s3.example.com", "https://", "https://s3.example.com/path",
                                 "https://user@s3.example.com", "https://s3.example.com:0", "https://s3.example.com:99999",
                                 "https://s3.example.com?x=1", "s3.example.com"};
  for (size_t i = 0; i < sizeof bad_endpoints / sizeof *bad_endpoints; i++) {
    reel_sigv4_s3_config cfg = s3_config(bad_endpoints[i], 0);
    CHECK_INT(reel_sigv4_s3_presign_url(&cfg, &get, &url), REEL_EINVAL);
  }
  /* a path-style bucket may use legacy names */
  reel_sigv4_s3_presign_request legacy = {"GET", "My_Bucket", "k", T_2024, 900, NULL, 0};
  CHECK_INT(reel_sigv4_s3_presign_url(&path, &legacy, &url), 0);
  CHECK(url && strncmp(url, "http://127.0.0.1:9000/My_Bucket/k?", 34) == 0);
  reel_sigv4_free(url);
}

static void test_locate(void) {
  reel_sigv4_s3_config v = s3_config("HTTPS://S3.Example.COM:8443", 1);
  reel_sigv4_s3_location loc;
  CHECK_INT(reel_sigv4_s3_locate(&v, "media", "2024-05/job 1/final.mp4", &loc), 0);
  CHECK_STR(loc.origin, "https://media.S3.Example.COM:8443");
  CHECK_STR(loc.host, "media.s3.example.com:8443");
  CHECK_STR(loc.path, "/2024-05/job%201/final.mp4");
  reel_sigv4_s3_location_free(&loc);
  reel_sigv4_s3_config p = s3_config("http://[::1]:9000", 1);
  CHECK_INT(reel_sigv4_s3_locate(&p, "media", NULL, &loc), 0);
  CHECK_STR(loc.origin, "http://[::1]:9000");
  CHECK_STR(loc.host, "[::1]:9000");
  CHECK_STR(loc.path, "/media");
  reel_sigv4_s3_location_free(&loc);
  reel_sigv4_s3_location_free(&loc);
}

/* Minimal base64 decoder for the policy check. */
static char *base64_decode(const char *in) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(in);
  if (n % 4) return NULL;
  char *out = malloc(n / 4 * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    unsigned v = 0;
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      const char *p = in[i + k] == '=' ? NULL : strchr(alphabet, in[i + k]);
      if (in[i + k] == '=') pad++;
      else if (!p || !*p || pad) {
        free(out);
        return NULL;
      }
      v = v << 6 | (p ? (unsigned)(p - alphabet) : 0);
    }
    out[o++] = (char)(v >> 16);
    if (pad < 2) out[o++] = (char)(v >> 8);
    if (pad < 1) out[o++] = (char)v;
  }
  out[o] = '\0';
  return out;
}

/* True when the policy's conditions hold an object {name: value}. */
static int has_eq_condition(json_t *conditions, const char *name, const char *value) {
  size_t i;
  json_t *c;
  json_array_foreach(conditions, i, c) {
    const char *v = json_string_value(json_object_get(c, name));
    if (v && strcmp(v, value) == 0) return 1;
  }
  return 0;
}

static json_t *array_condition(json_t *conditions, const char *op) {
  size_t i;
  json_t *c;
  json_array_foreach(conditions, i, c) {
    const char *v = json_string_value(json_array_get(c, 0));
    if (v && strcmp(v, op) == 0) return c;
  }
  return NULL;
}

static void test_post_policy(void) {
  reel_sigv4_s3_config cfg = s3_config("http://127.0.0.1:9000", 0);
  cfg.credentials.session_token = "session-token";
  reel_sigv4_s3_post_request req = {.bucket = "my-bucket", .key_prefix = "uploads/job_1/", .now = T_2024,
                                    .expires = 600, .content_length_min = 1, .content_length_max = 1048576,
                                    .content_type = "video/mp4"};
  reel_sigv4_s3_post_form form;
  CHECK_INT(reel_sigv4_s3_post_policy(&cfg, &req, &form), 0);
  CHECK_STR(form.url, "http://127.0.0.1:9000/my-bucket");
  const char *names[] = {"key", "Content-Type", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
                         "x-amz-security-token", "policy", "x-amz-signature"};
  CHECK_INT(form.fields.count, 8);
  for (size_t i = 0; i < 8 && i < form.fields.count; i++) CHECK_STR(form.fields.items[i].name, names[i]);
  CHECK_STR(reel_sigv4_fields_get(&form.fields, "key"), "uploads/job_1/${filename}");
  CHECK_STR(reel_sigv4_fields_get(&form.fields, "Content-Type"), "video/mp4");
  CHECK_STR(reel_sigv4_fields_get(&form.fields, "x-amz-algorithm"), "AWS4-HMAC-SHA256");
  CHECK_STR(reel_sigv4_fields_get(&form.fields, "x-amz-credential"), "AKIDEXAMPLE/20240506/us-east-1/s3/aws4_request");
  CHECK_STR(reel_sigv4_fields_get(&form.fields, "x-amz-date"), "20240506T070809Z");
  CHECK_STR(reel_sigv4_fields_get(&form.fields, "x-amz-security-token"), "session-token");

  /* the policy field decodes to the policy document, whose conditions bind every field */
  char *decoded = base64_decode(reel_sigv4_fields_get(&form.fields, "policy"));
  CHECK(decoded != NULL);
  CHECK_STR(decoded, form.policy_json);
  json_t *policy = decoded ? json_loads(decoded, 0, NULL) : NULL;
  CHECK(policy != NULL);
  CHECK_STR(json_string_value(json_object_get(policy, "expiration")), "2024-05-06T07:18:09.000Z");
  json_t *conditions = json_object_get(policy, "conditions");
  CHECK(has_eq_condition(conditions, "bucket", "my-bucket"));
  CHECK(has_eq_condition(conditions, "Content-Type", "video/mp4"));
  CHECK(has_eq_condition(conditions, "x-amz-algorithm", "AWS4-HMAC-SHA256"));
  CHECK(has_eq_condition(conditions, "x-amz-credential", "AKIDEXAMPLE/20240506/us-east-1/s3/aws4_request"));
  CHECK(has_eq_condition(conditions, "x-amz-date", "20240506T070809Z"));
  CHECK(has_eq_condition(conditions, "x-amz-security-token", "session-token"));
  json_t *starts = array_condition(conditions, "starts-with");
  CHECK_STR(json_string_value(json_array_get(starts, 1)), "$key");
  CHECK_STR(json_string_value(json_array_get(starts, 2)), "uploads/job_1/");
  json_t *range = array_condition(conditions, "content-length-range");
  CHECK_INT(json_integer_value(json_array_get(range, 1)), 1);
  CHECK_INT(json_integer_value(json_array_get(range, 2)), 1048576);
  json_decref(policy);
  free(decoded);

  /* the signature is HMAC(signing key, base64 policy) */
  unsigned char key[32], mac[32];
  char hex[65];
  const char *policy64 = reel_sigv4_fields_get(&form.fields, "policy");
  CHECK_INT(reel_sigv4_signing_key(SECRET, "20240506", "us-east-1", "s3", key), 0);
  gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, 32, policy64, strlen(policy64), mac);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  CHECK_STR(reel_sigv4_fields_get(&form.fields, "x-amz-signature"), hex);
  reel_sigv4_s3_post_form_free(&form);

  /* exact key, content-type prefix, virtual-hosted, no token */
  reel_sigv4_s3_config aws = s3_config("https://s3.amazonaws.com", 1);
  reel_sigv4_s3_post_request exact = {.bucket = "my-bucket", .key = "in/a.mp4", .now = T_2024, .expires = 60,
                                      .content_length_max = 10, .content_type_prefix = "video/"};
  CHECK_INT(reel_sigv4_s3_post_policy(&aws, &exact, &form), 0);
  CHECK_STR(form.url, "https://my-bucket.s3.amazonaws.com/");
  CHECK_INT(form.fields.count, 6);
  CHECK_STR(reel_sigv4_fields_get(&form.fields, "key"), "in/a.mp4");
  CHECK(reel_sigv4_fields_get(&form.fields, "Content-Type") == NULL);
  CHECK(reel_sigv4_fields_get(&form.fields, "x-amz-security-token") == NULL);
  CHECK(form.policy_json && strstr(form.policy_json, "{\"key\":\"in/a.mp4\"}"));
  CHECK(form.policy_json && strstr(form.policy_json, "[\"starts-with\",\"$Content-Type\",\"video/\"]"));
  CHECK(form.policy_json && strstr(form.policy_json, "[\"content-length-range\",0,10]"));
  reel_sigv4_s3_post_form_free(&form);

  /* rejected */
  reel_sigv4_s3_post_request bad = exact;
  bad.key_prefix = "in/"; /* both key and prefix */
  CHECK_INT(reel_sigv4_s3_post_policy(&aws, &bad, &form), REEL_EINVAL);
  CHECK(form.url == NULL);
  bad = exact;
  bad.content_length_max = 0;
  CHECK_INT(reel_sigv4_s3_post_policy(&aws, &bad, &form), REEL_EINVAL);
  bad = exact;
  bad.content_length_min = 11;
  CHECK_INT(reel_sigv4_s3_post_policy(&aws, &bad, &form), REEL_EINVAL);
  bad = exact;
  bad.content_length_max = REEL_SIGV4_MAX_POST_SIZE + 1;
  CHECK_INT(reel_sigv4_s3_post_policy(&aws, &bad, &form), REEL_EINVAL);
  bad = exact;
  bad.content_type = "video/mp4"; /* and a prefix */
  CHECK_INT(reel_sigv4_s3_post_policy(&aws, &bad, &form), REEL_EINVAL);
  bad = exact;
  bad.key = "bad\xff utf8";
  CHECK_INT(reel_sigv4_s3_post_policy(&aws, &bad, &form), REEL_EINVAL);
  bad = exact;
  bad.expires = 0;
  CHECK_INT(reel_sigv4_s3_post_policy(&aws, &bad, &form), REEL_EINVAL);
}

int main(void) {
  test_uri_encode();
  test_canonical_uri();
  test_canonical_query();
  test_header_values();
  test_signing_key();
  test_sign_generic();
  test_sign_rejects();
  test_sign_headers_s3_examples();
  test_presign();
  test_locate();
  test_post_policy();
  return check_report();
}
