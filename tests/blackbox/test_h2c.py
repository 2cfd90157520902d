"""HTTP/2 with prior knowledge (h2c) on the http:// listener, with the real
nghttp2 clients (Debian nghttp2-client: `nghttp`, `h2load`).

1. GET /healthz over h2c (nghttp -v) -> 200, and reeld's access log names
   the protocol HTTP/2.
2. The job lifecycle over h2c: POST /v1/jobs (JSON body, bearer token), poll
   GET /v1/jobs/{id} until finished (command backend), GET logs, the artifact
   URL downloaded with a Range header -> 206 and the right bytes, cancel of
   the finished job -> 409.
3. h2load -n 100 -c 1 -m 10: 10 concurrent streams on one connection, all 200.
4. HTTP/1.1 still works on the same port afterwards.
5. The preface followed by garbage: GOAWAY and the connection closed, while
   another client is still served.
6. reeld exits 0 on SIGTERM with an h2 connection open (which gets GOAWAY).
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SIZE = 50000
SIGNING_KEY = "h2c-signing-key-0123456789abcdef"
FRAME_GOAWAY = 0x7


def nghttp(r, path, tmp, method=None, data=None, headers=None, token=True, timeout=15):
    """One request with nghttp (h2c prior knowledge for http:// URIs).
    Returns (status, {lowercase name: value}, body bytes); status 0 on failure."""
    har = os.path.join(tmp, "last.har")
    if os.path.exists(har):
        os.remove(har)
    cmd = ["nghttp", "--har=" + har, "-t", str(timeout)]
    if method:
        cmd += ["-H", ":method: " + method]
    if token:
        cmd += ["-H", "authorization: Bearer " + h.TOKEN]
    for name, value in (headers or {}).items():
        cmd += ["-H", "%s: %s" % (name, value)]
    if data is not None:
        body_path = os.path.join(tmp, "body.json")
        with open(body_path, "wb") as f:
            f.write(data)
        cmd += ["-d", body_path, "-H", "content-type: application/json"]
    cmd.append(r.url + path)
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        return 0, {}, b""
    try:
        with open(har, encoding="utf-8") as f:
            entry = json.load(f)["log"]["entries"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return 0, {}, out.stdout
    hdrs = {hd["name"].lower(): hd["value"] for hd in entry["response"]["headers"]}
    return int(entry["response"]["status"]), hdrs, out.stdout


def read_frames(sock, deadline):
    """Reads from sock until EOF or deadline; returns (list of frame types, closed)."""
    data = b""
    closed = False
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    types = []
    pos = 0
    while pos + 9 <= len(data):
        length = struct.unpack(">I", b"\0" + data[pos:pos + 3])[0]
        types.append(data[pos + 3])
        pos += 9 + length
    return types, closed


def check_healthz(c, r, tmp):
    out = subprocess.run(["nghttp", "-v", "-t", "10", r.url + "/healthz"], capture_output=True, timeout=20)
    text = out.stdout.decode("utf-8", "replace")
    c.eq(out.returncode, 0, "nghttp -v GET /healthz exits 0")
    c.check(":status: 200" in text, "GET /healthz over h2c -> :status 200")
    c.check('{"status":"ok"}' in text, "the /healthz body arrives over h2c")
    found = h.wait_for(lambda: '"protocol":"HTTP/2"' in r.log_text() and "/healthz" in r.log_text(), 5)
    c.check(bool(found), "the access log names the protocol HTTP/2")


def check_lifecycle(c, r, tmp, copies):
    st, _, raw = nghttp(r, "/v1/jobs", tmp, data=json.dumps({"prompt": "h2c lifecycle"}).encode())
    c.eq(st, 202, "POST /v1/jobs over h2c -> 202")
    try:
        job = json.loads(raw)
    except ValueError:
        c.fail("POST /v1/jobs body is JSON (got %r)" % raw[:200])
        return
    jid = job.get("id", "")
    st, _, _ = nghttp(r, "/v1/jobs", tmp, data=b'{"prompt": "x"}', token=False)
    c.eq(st, 401, "POST /v1/jobs over h2c without the token -> 401")
    st, hd, raw = nghttp(r, "/v1/jobs", tmp, data=b'{"prompt": "' + b"x" * 70000 + b'"}')
    c.eq(st, 413, "a body over service.max_body_bytes over h2c -> 413")
    c.check(hd.get("content-type", "").startswith("application/problem+json"), "the 413 is a problem+json")

    doc = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st, _, raw = nghttp(r, "/v1/jobs/" + jid, tmp)
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {}
        if st != 200 or doc.get("status") in h.TERMINAL_STATUSES:
            break
        time.sleep(0.2)
    c.eq(doc.get("status"), "finished", "job polled over h2c reaches finished")

    st, _, raw = nghttp(r, "/v1/jobs/%s/logs" % jid, tmp)
    c.eq(st, 200, "GET /v1/jobs/{id}/logs over h2c -> 200")
    try:
        lines = json.loads(raw).get("lines", [])
    except (ValueError, AttributeError):
        lines = []
    c.check(any("h2c-marker" in str(line) for line in lines), "the job's log lines arrive over h2c (%r)" % lines[-3:])

    st, _, raw = nghttp(r, "/v1/jobs/%s/artifact" % jid, tmp)
    c.eq(st, 200, "GET /v1/jobs/{id}/artifact over h2c -> 200")
    try:
        url = urllib.parse.urlsplit(json.loads(raw).get("url", ""))
    except (ValueError, AttributeError):
        url = urllib.parse.urlsplit("")
    with open(os.path.join(copies, "last.bin"), "rb") as f:
        data = f.read()
    local = url.path + "?" + url.query
    st, hd, got = nghttp(r, local, tmp, token=False)
    c.check(st == 200 and got == data, "the artifact downloads over h2c whole (%d, %d of %d bytes)" % (st, len(got), len(data)))
    st, hd, got = nghttp(r, local, tmp, token=False, headers={"range": "bytes=1000-40999"})
    c.eq(st, 206, "artifact with Range over h2c -> 206")
    c.eq(hd.get("content-range"), "bytes 1000-40999/%d" % SIZE, "Content-Range over h2c")
    c.check(got == data[1000:41000], "the right 40000 bytes over h2c (got %d)" % len(got))

    st, _, _ = nghttp(r, "/v1/jobs/%s/cancel" % jid, tmp, method="POST")
    c.eq(st, 409, "cancel of a finished job over h2c -> 409")


def check_concurrency(c, r):
    out = subprocess.run(["h2load", "-n", "100", "-c", "1", "-m", "10", r.url + "/healthz"],
                         capture_output=True, timeout=30)
    text = out.stdout.decode("utf-8", "replace")
    c.check("100 succeeded, 0 failed, 0 errored" in text,
            "h2load: 100 requests, 10 concurrent streams on one connection, all succeed")
    c.check("status codes: 100 2xx" in text, "h2load: all 100 answers are 2xx")


def check_h1_still(c, r):
    st, _, body = r.request("GET", "/healthz", token=False)
    c.eq(st, 200, "HTTP/1.1 GET /healthz on the same port still -> 200")
    with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    c.check(got.startswith(b"HTTP/1.1 200"), "raw HTTP/1.1 request -> HTTP/1.1 200 (got %r)" % got[:30])


def check_garbage(c, r):
    bad = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    good = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    try:
        bad.sendall(PREFACE + b"\x00\x00\x04\x99garbage-garbage-garbage-garbage-garbage")
        types, closed = read_frames(bad, time.monotonic() + 5)
        c.check(FRAME_GOAWAY in types, "preface + garbage -> GOAWAY (frames %r)" % types)
        c.check(closed, "preface + garbage -> the connection is closed")
        good.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = good.recv(65536)
        c.check(got.startswith(b"HTTP/1.1 200"), "another client is still served meanwhile")
    finally:
        bad.close()
        good.close()
    st, _, _ = r.request("GET", "/healthz", token=False)
    c.eq(st, 200, "reeld still serves after the malformed h2 connection")


def check_sigterm(c, r):
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    try:
        # preface + empty SETTINGS: an idle, open h2 connection
        s.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        read_frames(s, time.monotonic() + 0.5)
        code = r.stop(timeout=10)
        c.eq(code, 0, "reeld exits 0 on SIGTERM with an h2 connection open")
        types, _ = read_frames(s, time.monotonic() + 1)
        c.check(FRAME_GOAWAY in types, "the open h2 connection gets GOAWAY on shutdown (frames %r)" % types)
    finally:
        s.close()


def body(c):
    if not (shutil.which("nghttp") and shutil.which("h2load")):
        c.fail("nghttp and h2load are needed (apt-get install nghttp2-client, scripts/install-deps.sh --test)")
        return
    tmp = tempfile.mkdtemp(prefix="reel-h2c-")
    copies = tempfile.mkdtemp(prefix="reel-h2c-copies-")
    script = h.write_script(copies, "job.sh", """
        set -e
        echo h2c-marker
        mkdir -p output
        head -c %d /dev/urandom > output/final_video.mp4
        cp output/final_video.mp4 %s/last.bin
    """ % (SIZE, copies))
    try:
        with h.Reeld(service={"workers": 1, "signing_key": SIGNING_KEY, "max_body_bytes": 65536},
                     pipeline={"default_backend": "command", "command": [script]}) as r:
            check_healthz(c, r, tmp)
            check_lifecycle(c, r, tmp, copies)
            check_concurrency(c, r)
            check_h1_still(c, r)
            check_garbage(c, r)
            check_sigterm(c, r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(copies, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
