"""An HTTP/3 client for the black-box tests: the real `gtlsclient` (Debian
ngtcp2-client), which does QUIC, TLS 1.3 and HTTP/3 with libngtcp2 and
libnghttp3, plus a small LD_PRELOAD library compiled here with cc that adds
request header fields (Authorization, Content-Type, Range...) to the
request gtlsclient submits to nghttp3, since gtlsclient has no option for
them. Everything on the wire is gtlsclient's.

    client = H3Client(tmp)          # compiles the header library into tmp
    status, headers, body, output = client.request("127.0.0.1", port,
        "https://localhost:%d/v1/jobs" % port, method="POST", data=b"{...}",
        headers={"authorization": "Bearer ...", "content-type": "application/json"})

status is 0 when no answer arrived (output then says why).
"""

import os
import re
import shutil
import subprocess

# LD_PRELOAD for gtlsclient: appends the "name: value" lines of
# $REEL_H3_EXTRA_HEADERS to every request it submits to nghttp3.
SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <nghttp3/nghttp3.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 64
#define MAX_EXTRA 8

typedef int (*submit_fn)(nghttp3_conn *, int64_t, const nghttp3_nv *, size_t,
                         const nghttp3_data_reader *, void *);

int nghttp3_conn_submit_request(nghttp3_conn *conn, int64_t stream_id, const nghttp3_nv *nva,
                                size_t nvlen, const nghttp3_data_reader *dr, void *user_data) {
  submit_fn real = (submit_fn)dlsym(RTLD_NEXT, "nghttp3_conn_submit_request");
  const char *spec = getenv("REEL_H3_EXTRA_HEADERS");
  if (!real) abort();
  if (!spec || !*spec || nvlen > MAX_FIELDS) return real(conn, stream_id, nva, nvlen, dr, user_data);
  nghttp3_nv all[MAX_FIELDS + MAX_EXTRA];
  memcpy(all, nva, nvlen * sizeof *nva);
  size_t n = nvlen;
  char *copy = strdup(spec);
  if (!copy) abort();
  for (char *line = strtok(copy, "\n"); line && n < nvlen + MAX_EXTRA; line = strtok(NULL, "\n")) {
    char *colon = strchr(line, ':');
    if (!colon || colon == line) continue;
    char *value = colon + 1;
    while (*value == ' ') value++;
    all[n].name = (uint8_t *)line;
    all[n].namelen = (size_t)(colon - line);
    all[n].value = (uint8_t *)value;
    all[n].valuelen = strlen(value);
    all[n].flags = NGHTTP3_NV_FLAG_NONE;
    n++;
  }
  int rv = real(conn, stream_id, all, n, dr, user_data);
  free(copy);
  return rv;
}
"""

HEADER_LINE = re.compile(r"^http: stream 0x[0-9a-f]+ \[(:?[^:\]]+): (.*)\]$")


class H3ClientError(RuntimeError):
    pass


class H3Client:
    def __init__(self, tmp):
        for tool, pkg in (("gtlsclient", "ngtcp2-client"), ("cc", "gcc")):
            if not shutil.which(tool):
                raise H3ClientError("%s is needed (apt-get install %s; scripts/install-deps.sh --test)" % (tool, pkg))
        self.tmp = tmp
        self.shim = os.path.join(tmp, "h3headers.so")
        self.seq = 0
        src = os.path.join(tmp, "h3headers.c")
        with open(src, "w", encoding="utf-8") as f:
            f.write(SHIM_C)
        out = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", self.shim, src, "-ldl"],
                             capture_output=True, timeout=60)
        if out.returncode != 0:
            raise H3ClientError("the header library for gtlsclient does not compile (it needs libnghttp3-dev): "
                                + out.stderr.decode("utf-8", "replace")[-400:])

    def request(self, host, port, url, method=None, data=None, headers=None, timeout=30):
        """One request over HTTP/3 to host:port (UDP) for url (its authority
        becomes :authority). Returns (status, {lowercase name: value}, body
        bytes, gtlsclient's output)."""
        self.seq += 1
        dl = os.path.join(self.tmp, "h3-%d" % self.seq)
        os.makedirs(dl)
        cmd = ["gtlsclient", "--exit-on-all-streams-close", "--no-quic-dump", "--no-http-dump",
               "--handshake-timeout=10s", "--timeout=%ds" % timeout, "--download", dl]
        if method:
            cmd += ["-m", method]
        if data is not None:
            body_path = os.path.join(self.tmp, "h3-body-%d" % self.seq)
            with open(body_path, "wb") as f:
                f.write(data)
            cmd += ["-d", body_path]
        cmd += [host, str(port), url]
        env = dict(os.environ)
        if headers:
            env["LD_PRELOAD"] = self.shim
            env["REEL_H3_EXTRA_HEADERS"] = "\n".join("%s: %s" % (k.lower(), v) for k, v in headers.items())
        try:
            out = subprocess.run(cmd, capture_output=True, timeout=timeout + 10, env=env)
            text = (out.stdout + out.stderr).decode("utf-8", "replace")
        except subprocess.TimeoutExpired as e:
            text = ((e.stdout or b"") + (e.stderr or b"")).decode("utf-8", "replace")
        got = {}
        for line in text.splitlines():
            m = HEADER_LINE.match(line.strip())
            if m:
                got[m.group(1).lower()] = m.group(2)
        files = os.listdir(dl)
        body = b""
        if len(files) == 1:
            with open(os.path.join(dl, files[0]), "rb") as f:
                body = f.read()
        shutil.rmtree(dl, ignore_errors=True)
        try:
            status = int(got.get(":status", "0"))
        except ValueError:
            status = 0
        return status, got, body, text
