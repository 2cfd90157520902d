"""HTTP details a careful client (or an attacker) runs into, checked on the
real reeld over real sockets:

1. Lingering close: a 2 MiB body (413) or an oversized head followed by more
   data (431) is answered with its status, and Python's http.client reads it,
   instead of ConnectionResetError because reeld closed while the client was
   still sending.
2. Two Authorization headers (HTTP/1.1, and HTTP/2 by curl) answer 400; a
   signed download URL with a duplicated `expires` or `signature` is 403.
3. An HTTP/2 stream reset by the client right after its POST /v1/jobs still
   gets its access-log line and its metric (the job was accepted).
4. A 12 MB body with a million keys is refused by the JSON work cap (400 with
   the cap in its detail), with max_body_bytes raised.
5. Bytes that cannot start a request (NUL, garbage without CRLF) are answered
   400 at once, not after header_timeout.
6. Download URLs use the scheme and authority the client used (https:// on
   the TLS listener, the Host of the request), unless public_base_url is set.
"""

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import reelharness as h

JOB_SCRIPT = """
    mkdir -p output
    head -c 4096 /dev/urandom > output/final_video.mp4
"""


def raw_exchange(port, data, timeout=10.0):
    """Sends data on a fresh connection and returns everything read until the
    server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    break
                out += got
        except socket.timeout:
            pass
        return out


def status_of(raw):
    m = re.match(rb"HTTP/1\.1 (\d{3})", raw)
    return int(m.group(1)) if m else None


# --------------------------------------------------------- lingering close --

def check_lingering_close(c, r):
    big = b"x" * (2 << 20)
    for attempt in range(3):
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=20)
        try:
            conn.request("POST", "/v1/jobs", body=big,
                         headers={"Authorization": "Bearer " + r.token, "Content-Type": "application/json"})
            resp = conn.getresponse()
            c.eq(resp.status, 413, "http.client sending a 2 MiB body reads 413 (try %d)" % attempt)
            body = resp.read()
            c.check(b"max_body_bytes" in body, "the 413 names service.max_body_bytes")
        except (ConnectionResetError, BrokenPipeError) as e:
            c.fail("http.client got %r instead of the 413 (try %d)" % (e, attempt))
        finally:
            conn.close()

    # an oversized head, and more data after it, still sees the 431
    with socket.create_connection(("127.0.0.1", r.port), timeout=20) as s:
        head = b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
        try:
            s.sendall(head + b"y" * (1 << 20))
            got = s.recv(4096)
        except (ConnectionResetError, BrokenPipeError) as e:
            got = repr(e).encode()
        c.eq(status_of(got), 431, "a 40 KB header followed by 1 MiB more reads 431 (got %r)" % got[:60])
        # the server closes once the client stops: an EOF, not a reset
        s.shutdown(socket.SHUT_WR)
        ending = "EOF"
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            ending = "a reset"
        except socket.timeout:
            ending = "no close within 20 s"
        c.eq(ending, "EOF", "after the client's FIN the lingering connection ends with EOF")
    c.check(served(r), "reeld serves other requests after lingering closes")


def served(r):
    st, _, _ = r.request("GET", "/healthz", token=False)
    return st == 200


# ------------------------------------------------------ duplicate credentials --

def check_duplicate_credentials(c, r, job_id):
    tok = "Bearer " + r.token
    raw = raw_exchange(r.port, ("GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                                "Authorization: Bearer other\r\nConnection: close\r\n\r\n" % tok).encode())
    c.eq(status_of(raw), 400, "HTTP/1.1: two Authorization headers answer 400")
    c.check(b"duplicate-authorization" in raw, "the 400 says the Authorization header is duplicated")
    raw = raw_exchange(r.port, ("GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer other\r\n"
                                "Authorization: %s\r\nConnection: close\r\n\r\n" % tok).encode())
    c.eq(status_of(raw), 400, "HTTP/1.1: a bad first and good second Authorization answer 400")
    one = raw_exchange(r.port, ("GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                                "Connection: close\r\n\r\n" % tok).encode())
    c.eq(status_of(one), 200, "HTTP/1.1: one Authorization header answers 200")

    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "--http2-prior-knowledge", "-H", "Authorization: " + tok,
                        "-H", "Authorization: Bearer other", r.url + "/v1/jobs"],
                       capture_output=True, text=True, timeout=30)
    c.eq(p.stdout.strip(), "400 2", "HTTP/2 (curl, h2c): two Authorization headers answer 400")

    st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job_id)
    c.eq(st, 200, "the finished job has a download URL")
    url = art["url"]
    path = url[url.index("/v1/files/"):]
    st, _, _ = r.request("GET", path, token=False)
    c.eq(st, 200, "the signed URL as given downloads")
    q = dict(part.split("=", 1) for part in path.split("?", 1)[1].split("&"))
    for name, extra in (("expires", "expires=%d" % (int(q["expires"]) + 1000)),
                        ("expires", "expires=" + q["expires"]),
                        ("signature", "signature=" + q["signature"])):
        st, _, _ = r.request("GET", path + "&" + extra, token=False)
        c.eq(st, 403, "a signed URL with %s given twice (%s) is 403" % (name, extra[:20]))


# --------------------------------------------------------- h2 reset after POST --

def h2_frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def metric_value(r, route, status):
    st, _, text = r.request("GET", "/metrics", token=False)
    total = 0.0
    for line in text.decode().splitlines():
        if line.startswith("reel_http_requests_total{") and 'route="%s"' % route in line \
                and 'status="%d"' % status in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def check_h2_reset_after_post(c, r):
    before_metric = metric_value(r, "POST /v1/jobs", 202)
    st, _, listing = r.json("GET", "/v1/jobs?limit=100")
    before_jobs = len(listing.get("jobs", listing.get("items", [])))
    body = json.dumps({"prompt": "reset after accept"}).encode()
    headers = (b"\x83"  # :method POST
               + b"\x86"  # :scheme http
               + hpack_literal(":path", "/v1/jobs")
               + hpack_literal(":authority", "127.0.0.1")
               + hpack_literal("authorization", "Bearer " + r.token)
               + hpack_literal("content-type", "application/json")
               + hpack_literal("content-length", str(len(body))))
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0, b"")
                  + h2_frame(1, 0x4, 1, headers)            # HEADERS, END_HEADERS
                  + h2_frame(0, 0x1, 1, body)               # DATA, END_STREAM
                  + h2_frame(3, 0, 1, (8).to_bytes(4, "big")))  # RST_STREAM CANCEL at once
        time.sleep(0.5)
    log_line = h.wait_for(lambda: [l for l in r.log_text().splitlines()
                                    if '"route":"POST /v1/jobs"' in l and '"client":"gone"' in l], 10)
    c.check(bool(log_line), "a POST reset by the client after acceptance has an access-log line")
    if log_line:
        c.check('"status":202' in log_line[0], "its access-log line says 202: %s" % log_line[0][:200])
    c.eq(metric_value(r, "POST /v1/jobs", 202), before_metric + 1,
         "reel_http_requests_total{route=\"POST /v1/jobs\",status=\"202\"} counts the reset request")
    st, _, listing = r.json("GET", "/v1/jobs?limit=100")
    c.eq(len(listing.get("jobs", listing.get("items", []))), before_jobs + 1, "the job was accepted")


# --------------------------------------------------------------- JSON cap --

def check_json_cap(c, r):
    parts = ['"k%d":1' % i for i in range(1000000)]
    body = ('{"prompt":"x",' + ",".join(parts) + "}").encode()
    c.check(len(body) > 11_000_000, "the body is %d bytes" % len(body))
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=60)
    conn.request("POST", "/v1/jobs", body=body,
                 headers={"Authorization": "Bearer " + r.token, "Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    c.eq(resp.status, 400, "a million keys answer 400")
    c.check(b"more than 10000 JSON values" in text, "the detail names the JSON cap: %r" % text[:200])


# ------------------------------------------------------------ early 400 --

def check_garbage_answered_early(c, r):
    # header_timeout is 30 s here: an answer within 10 s can only be the early 400
    for label, data in (("NUL bytes", b"\x00\x00\x00\x00"),
                        ("garbage without CRLF", b"hello there, not http at all"),
                        ("a TLS ClientHello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")):
        with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
            s.sendall(data)
            try:
                got = s.recv(4096)
            except socket.timeout:
                got = b""
        c.eq(status_of(got), 400, "%s are answered 400 at once" % label)


# ------------------------------------------------------- download URL base --

def check_download_url_base(c, r, job_id, tls_port, ca):
    st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job_id)
    c.check(art["url"].startswith("http://127.0.0.1:%d/v1/files/" % r.port),
            "over http://, the URL is on the http listener: %s" % art["url"][:60])
    st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job_id, headers={"Host": "media.example.test:8080"})
    c.check(art["url"].startswith("http://media.example.test:8080/v1/files/"),
            "the URL follows the request's Host: %s" % art["url"][:60])
    st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job_id, headers={"Host": "evil/path?x"})
    c.check(art["url"].startswith("http://127.0.0.1:%d/v1/files/" % r.port),
            "a malformed Host falls back to the listener: %s" % art["url"][:60])

    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection("127.0.0.1", tls_port, context=ctx, timeout=20)
    conn.request("GET", "/v1/jobs/%s/artifact" % job_id, headers={"Authorization": "Bearer " + r.token,
                                                                  "Host": "localhost:%d" % tls_port})
    resp = conn.getresponse()
    art = json.loads(resp.read())
    conn.close()
    c.check(art["url"].startswith("https://localhost:%d/v1/files/" % tls_port),
            "over https://, the URL is https on the TLS listener: %s" % art["url"][:60])
    if art["url"].startswith("https://"):
        conn = http.client.HTTPSConnection("127.0.0.1", tls_port, context=ctx, timeout=20)
        conn.request("GET", art["url"][art["url"].index("/v1/files/"):], headers={"Host": "localhost"})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        c.eq((resp.status, len(data)), (200, 4096), "the https URL downloads the artifact")


def openapi_servers(r):
    st, _, doc = r.request("GET", "/openapi.yaml", token=False)
    m = re.search(rb"\nservers:\n  - url: (\S+)\n", doc)
    return st, m.group(1).decode() if m else None


def check_openapi_servers(c, r):
    st, url = openapi_servers(r)
    c.eq((st, url), (200, "/"), "/openapi.yaml names no hard-coded server: its servers URL is this server (/)")


def check_public_base_url(c, r, job_id):
    r.stop()
    r.config["service"]["public_base_url"] = "https://cdn.example.test/reel/"
    r.start()
    st, url = openapi_servers(r)
    c.eq(url, "https://cdn.example.test/reel", "with public_base_url, /openapi.yaml names it as its server")
    st2, _, again = r.request("GET", "/openapi.yaml", token=False)
    c.check(b"openapi: " in again and b"/v1/jobs" in again, "the rewritten document is whole")
    st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job_id, headers={"Host": "other.example.test"})
    c.check(art["url"].startswith("https://cdn.example.test/reel/v1/files/"),
            "a configured public_base_url wins over the Host: %s" % art["url"][:60])


def section(c, fn, *args):
    """Runs one check_* so that an exception fails that section only."""
    try:
        fn(c, *args)
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        c.fail("%s raised %r" % (fn.__name__, e))


def body(c):
    tmp = tempfile.mkdtemp(prefix="reel-http-details-")
    certs = os.path.join(tmp, "certs")
    subprocess.run(["bash", os.path.join(h.SOURCE_DIR, "scripts", "dev-cert.sh"), certs],
                   capture_output=True, check=True, timeout=60)
    script = h.write_script(tmp, "job.sh", JOB_SCRIPT)
    tls_port = h.free_port()
    try:
        with h.Reeld(service={"workers": 1, "header_timeout_seconds": 30,
                              "tls": {"cert_file": os.path.join(certs, "server.pem"),
                                      "key_file": os.path.join(certs, "server-key.pem")}},
                     pipeline={"default_backend": "command", "command": [script]}, start=False) as r:
            r.config["service"]["listen"] = ["127.0.0.1:%d" % r.port, "https://127.0.0.1:%d" % tls_port]
            r.start()
            st, _, job = r.json("POST", "/v1/jobs", {"prompt": "a finished job"})
            done = r.wait_job(job["id"], "finished", timeout=60)
            section(c, check_lingering_close, r)
            section(c, check_duplicate_credentials, r, done["id"])
            section(c, check_h2_reset_after_post, r)
            section(c, check_garbage_answered_early, r)
            section(c, check_openapi_servers, r)
            section(c, check_download_url_base, r, done["id"], tls_port, os.path.join(certs, "ca.pem"))
            r.stop()
            r.config["service"]["max_body_bytes"] = 16 << 20
            r.start()
            section(c, check_json_cap, r)
            section(c, check_public_base_url, r, done["id"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
