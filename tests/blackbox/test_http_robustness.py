#!/usr/bin/env python3
"""HTTP/1.1 robustness of reeld, with raw sockets.

Keep-alive (two requests, one connection); pipelining (requests sent in one
write are answered in order); chunked request bodies (202; bad chunk size
400; too large 413); Expect: 100-continue; malformed request lines, bad
headers and conflicting or invalid Content-Length (400, connection closed);
headers over service.max_header_bytes (431); HTTP/2.0 on the HTTP/1 parser
(505); unknown Transfer-Encoding (501); slow-loris: 50 clients that send a
partial head and stall (and one that trickles a byte at a time) are closed
after service.header_timeout_seconds while a second client is served at
normal speed (its GET /healthz latency is measured and printed); an idle
keep-alive connection is closed after service.idle_timeout_seconds, and an
active one is not; random-byte floods are answered 400 or closed and the
server keeps serving; at the end reeld is alive and exits 0 on SIGTERM.
"""

import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

HEADER_TIMEOUT = 1
# Not equal to HEADER_TIMEOUT, so the idle check shows which setting closed the connection.
IDLE_TIMEOUT = 2
MAX_HEADER_BYTES = 4096
MAX_BODY_BYTES = 4096
AUTH = "Authorization: Bearer %s\r\n" % h.TOKEN


class Closed(Exception):
    """The server closed the connection before a whole response arrived."""


class RawConn:
    """One client TCP connection with a read buffer and a response parser."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data.encode("latin-1") if isinstance(data, str) else data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("no answer in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed("connection closed (buffered %r)" % self.buf[:80])
        self.buf += chunk

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_head(self, timeout=None):
        """Reads a status line and headers: (status, reason, headers{lower: value})."""
        deadline = time.monotonic() + (timeout or self.timeout)
        status_line = self._line(deadline).decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ValueError("bad status line %r" % status_line)
        headers = {}
        while True:
            line = self._line(deadline)
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            headers[name] = headers[name] + ", " + value.strip() if name in headers else value.strip()
        return int(parts[1]), (parts[2] if len(parts) > 2 else ""), headers

    def read_response(self, method="GET", timeout=None):
        """Reads one whole final response: (status, headers, body)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        status, _, headers = self.read_head(timeout)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, headers, b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._line(deadline).split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line(deadline):
                        pass
                    return status, headers, body
                body += self._take(size, deadline)
                self._line(deadline)
        if "content-length" in headers:
            return status, headers, self._take(int(headers["content-length"]), deadline)
        body = self.buf
        self.buf = b""
        try:
            while True:
                self._fill(deadline)
                body += self.buf
                self.buf = b""
        except Closed:
            return status, headers, body

    def wait_closed(self, timeout):
        """Reads (and drops) until the server closes; returns the seconds it
        took, or None if the connection was still open after timeout."""
        start = time.monotonic()
        deadline = start + timeout
        try:
            while True:
                self._fill(deadline)
                self.buf = b""
        except Closed:
            return time.monotonic() - start
        except socket.timeout:
            return None
        except OSError:
            return time.monotonic() - start

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def get(path, extra=""):
    return "GET %s HTTP/1.1\r\nHost: reel\r\n%s\r\n" % (path, extra)


def post_job(body, extra=""):
    data = body.encode() if isinstance(body, str) else body
    return ("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
            "Content-Length: %d\r\n%s\r\n" % (AUTH, len(data), extra)).encode() + data


def check_error_closes(c, r, what, data, expected=(400,)):
    """Sends data on a fresh connection; expects one of `expected` and then a close."""
    conn = RawConn(r.port)
    try:
        conn.send(data)
        try:
            status, headers, body = conn.read_response()
        except (Closed, socket.timeout, ValueError) as e:
            c.fail("%s: an error response (got %s)" % (what, e))
            return
        c.check(status in expected, "%s -> %s (got %d)" % (what, "/".join(map(str, expected)), status))
        if headers.get("content-type", "").startswith("application/problem+json"):
            try:
                doc = json.loads(body)
                c.eq(doc.get("status"), status, "%s: problem status equals HTTP status" % what)
                c.eq(doc.get("request_id"), headers.get("x-request-id"), "%s: request_id equals X-Request-Id" % what)
            except ValueError:
                c.fail("%s: problem body is JSON" % what)
        else:
            c.fail("%s: body is application/problem+json (got %r)" % (what, headers.get("content-type")))
        took = conn.wait_closed(3)
        c.check(took is not None, "%s: the server closes the connection after the error" % what)
    finally:
        conn.close()


def healthz_latency(port):
    start = time.monotonic()
    conn = RawConn(port, timeout=5)
    try:
        conn.send(get("/healthz", "Connection: close\r\n"))
        status, _, _ = conn.read_response()
    finally:
        conn.close()
    return status, time.monotonic() - start


def check_keepalive_and_pipelining(c, r):
    conn = RawConn(r.port)
    try:
        conn.send(get("/healthz"))
        s1, h1, _ = conn.read_response()
        conn.send(get("/v1/jobs", AUTH))
        s2, h2, b2 = conn.read_response()
        c.eq((s1, s2), (200, 200), "keep-alive: two requests on one connection -> 200, 200")
        c.check(h1.get("connection", "").lower() != "close", "keep-alive: first response does not close")
        c.check(h1.get("x-request-id") != h2.get("x-request-id"), "keep-alive: each response has its own X-Request-Id")
        c.check(b"jobs" in b2, "keep-alive: second response is the job list")
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("keep-alive: %s" % e)
    finally:
        conn.close()

    conn = RawConn(r.port)
    try:
        conn.send(get("/healthz") + get("/v1/nope", AUTH) + get("/metrics"))
        got = [conn.read_response() for _ in range(3)]
        c.eq([g[0] for g in got], [200, 404, 200], "pipelining: three GETs in one write answered in order")
        c.check(got[2][1].get("content-type", "").startswith("text/plain"),
                "pipelining: the third answer is /metrics (text/plain)")
        conn.send(get("/healthz", "Connection: close\r\n"))
        s, hd, _ = conn.read_response()
        c.eq(s, 200, "pipelining: the connection still works afterwards")
        c.check(conn.wait_closed(3) is not None, "Connection: close is honoured")
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("pipelining: %s" % e)
    finally:
        conn.close()

    # Pipelined requests with bodies in one write: bodies are not confused with the next head.
    conn = RawConn(r.port)
    try:
        data = (post_job('{"prompt": "pipelined one"}') + get("/healthz").encode()
                + post_job('{"prompt": "pipelined two"}') + post_job(b'{"prompt": 1}'))
        conn.send(data)
        got = [conn.read_response() for _ in range(4)]
        c.eq([g[0] for g in got], [202, 200, 202, 400], "pipelining with bodies: 202, 200, 202, 400 in order")
        ids = [json.loads(g[2]).get("id") for g in got if g[0] == 202]
        c.check(len(set(ids)) == 2, "pipelining with bodies: two distinct jobs created (%r)" % ids)
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("pipelining with bodies: %s" % e)
    finally:
        conn.close()

    # 100 pipelined requests, alternating answers, in one write: all answered, in order.
    conn = RawConn(r.port)
    try:
        conn.send((get("/healthz") + get("/v1/nope", AUTH)) * 50)
        got = [conn.read_response()[0] for _ in range(100)]
        c.eq(got, [200, 404] * 50, "100 pipelined requests in one write are answered in order")
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("100 pipelined requests: %s" % e)
    finally:
        conn.close()

    # absolute-form request target (RFC 9112 3.2.2: a server MUST accept it).
    conn = RawConn(r.port)
    try:
        conn.send("GET http://reel/healthz HTTP/1.1\r\nHost: reel\r\n\r\n")
        s, _, _ = conn.read_response()
        c.eq(s, 200, "absolute-form GET http://reel/healthz -> 200")
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("absolute-form: %s" % e)
    finally:
        conn.close()

    # HTTP/1.0: served, and closed afterwards without keep-alive.
    conn = RawConn(r.port)
    try:
        conn.send("GET /healthz HTTP/1.0\r\n\r\n")
        s, _, _ = conn.read_response()
        c.eq(s, 200, "HTTP/1.0 GET /healthz -> 200")
        c.check(conn.wait_closed(3) is not None, "HTTP/1.0 without keep-alive: connection closed after the response")
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("HTTP/1.0: %s" % e)
    finally:
        conn.close()


def check_bodies(c, r):
    # Chunked request body, split across several writes, with a chunk extension.
    conn = RawConn(r.port)
    try:
        conn.send("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n" % AUTH)
        for piece in (b'{"prom', b'pt": "a chunked', b' fox"}'):
            conn.send(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.05)
        conn.send(b"0\r\n\r\n")
        s, hd, body = conn.read_response()
        c.eq(s, 202, "chunked POST /v1/jobs -> 202")
        c.check(hd.get("location", "").startswith("/v1/jobs/job_"), "chunked POST: Location of the new job")
        conn.send(get("/healthz"))
        s, _, _ = conn.read_response()
        c.eq(s, 200, "after a chunked request the connection serves the next one")
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("chunked POST: %s" % e)
    finally:
        conn.close()

    # Chunked body with a trailer section (RFC 9112 7.1.2: recipients must parse trailers).
    conn = RawConn(r.port)
    try:
        conn.send("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n"
                  "0\r\nX-Checksum: abc\r\n\r\n" % (AUTH, 5, '{"pro', 12, 'mpt": "fox"}'))
        s, hd, body = conn.read_response()
        c.eq(s, 202, "chunked POST with a trailer field -> 202 (body %r)" % body[:160])
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("chunked POST with trailer: %s" % e)
    finally:
        conn.close()

    big = b'{"prompt": "' + b"x" * (MAX_BODY_BYTES + 100) + b'"}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 1000]), big[i:i + 1000]) for i in range(0, len(big), 1000))
    check_error_closes(c, r, "chunked body over max_body_bytes",
                       ("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n" % AUTH).encode() + chunks + b"0\r\n\r\n", (413,))
    check_error_closes(c, r, "chunked body with a bad chunk size",
                       ("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n" % AUTH).encode())

    # Expect: 100-continue.
    conn = RawConn(r.port)
    try:
        body = b'{"prompt": "expect continue"}'
        conn.send("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                  "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (AUTH, len(body)))
        raw_start = time.monotonic()
        s, reason, _ = conn.read_head(timeout=3)
        c.eq(s, 100, "Expect: 100-continue -> interim 100 before the body is sent")
        c.check(time.monotonic() - raw_start < 1.0, "the 100 Continue arrives at once")
        conn.send(body)
        s, hd, out = conn.read_response()
        c.eq(s, 202, "after 100 Continue and the body -> 202")
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("Expect: 100-continue: %s" % e)
    finally:
        conn.close()
    # Expect with a declared body over the limit: the final 413 comes instead of 100.
    conn = RawConn(r.port)
    try:
        conn.send("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                  "Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n" % AUTH)
        s, _, _ = conn.read_head(timeout=3)
        c.eq(s, 413, "Expect: 100-continue with Content-Length over max_body_bytes -> 413 without 100")
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("Expect with a too-large body: %s" % e)
    finally:
        conn.close()


def check_malformed(c, r):
    check_error_closes(c, r, "request line without a version", "GET /healthz\r\nHost: reel\r\n\r\n")
    check_error_closes(c, r, "garbage request line", "THIS IS NOT HTTP AT ALL\r\n\r\n")
    check_error_closes(c, r, "request line with extra spaces", "GET  /healthz  HTTP/1.1\r\nHost: reel\r\n\r\n")
    check_error_closes(c, r, "NUL byte in the request line", b"GET /hea\x00lthz HTTP/1.1\r\nHost: reel\r\n\r\n")
    check_error_closes(c, r, "version HTTP/1.x", "GET /healthz HTTP/1.x\r\nHost: reel\r\n\r\n")
    check_error_closes(c, r, "header line without a colon", "GET /healthz HTTP/1.1\r\nHost reel\r\n\r\n")
    check_error_closes(c, r, "space before the header colon", "GET /healthz HTTP/1.1\r\nHost : reel\r\n\r\n")
    check_error_closes(c, r, "control character in a header value",
                       b"GET /healthz HTTP/1.1\r\nHost: reel\r\nX-A: a\x01b\r\n\r\n")
    check_error_closes(c, r, "obsolete line folding",
                       "GET /healthz HTTP/1.1\r\nHost: reel\r\nX-A: a\r\n  folded\r\n\r\n")
    body = b'{"prompt": "x"}'
    check_error_closes(c, r, "conflicting Content-Length headers",
                       ("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                        "Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (AUTH, len(body), len(body) + 1)).encode()
                       + body + b"x")
    check_error_closes(c, r, "Content-Length list with different values",
                       ("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                        "Content-Length: %d, %d\r\n\r\n" % (AUTH, len(body), len(body) + 1)).encode() + body + b"x")
    check_error_closes(c, r, "negative Content-Length",
                       "POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Length: -1\r\n\r\n" % AUTH)
    check_error_closes(c, r, "non-numeric Content-Length",
                       "POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Length: 1x\r\n\r\n" % AUTH)
    check_error_closes(c, r, "Content-Length and Transfer-Encoding together",
                       ("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                        % (AUTH, len(body), body.decode())).encode(), (400,))
    check_error_closes(c, r, "HTTP/2.0 request on the HTTP/1 listener",
                       "GET /healthz HTTP/2.0\r\nHost: reel\r\n\r\n", (505,))
    check_error_closes(c, r, "HTTP/3.0 request", "GET /healthz HTTP/3.0\r\nHost: reel\r\n\r\n", (505,))
    check_error_closes(c, r, "unknown Transfer-Encoding",
                       ("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                        "Transfer-Encoding: foo\r\n\r\n" % AUTH), (501,))
    check_error_closes(c, r, "Transfer-Encoding gzip, chunked",
                       ("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                        "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" % AUTH), (501,))

    check_error_closes(c, r, "HTTP/1.1 request without Host", "GET /healthz HTTP/1.1\r\n\r\n")
    check_error_closes(c, r, "two Host headers", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    check_error_closes(c, r, "bare LF line endings in the head", "GET /healthz HTTP/1.1\nHost: reel\n\n")
    check_error_closes(c, r, "chunk size too large to represent",
                       ("POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n" % AUTH), (400, 413))
    check_error_closes(c, r, "huge Content-Length", "POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%s"
                       "Content-Type: application/json\r\nContent-Length: 99999999999999999999999\r\n\r\n" % AUTH,
                       (400, 413))

    # Header size limit (max_header_bytes 4096 here).
    conn = RawConn(r.port)
    try:
        conn.send(get("/healthz", "X-Fill: %s\r\n" % ("a" * 2500)))
        s, _, _ = conn.read_response()
        c.eq(s, 200, "a 2.5 KB header under max_header_bytes 4096 -> 200")
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("header under the limit: %s" % e)
    finally:
        conn.close()
    check_error_closes(c, r, "one header over max_header_bytes", get("/healthz", "X-Fill: %s\r\n" % ("a" * 5000)),
                       (431,))
    many = "".join("X-F%d: %s\r\n" % (i, "b" * 90) for i in range(60))
    check_error_closes(c, r, "many headers over max_header_bytes", get("/healthz", many), (431,))
    check_error_closes(c, r, "request line over max_header_bytes", get("/healthz?" + "q" * 6000), (414, 431))


def check_slowloris(c, r):
    stalled = []
    try:
        t_stall = time.monotonic()
        for i in range(50):
            conn = RawConn(r.port, timeout=10)
            conn.send("GET /healthz HTTP/1.1\r\nHost: reel\r\nX-Slow-%d: " % i)
            stalled.append(conn)
        silent = RawConn(r.port, timeout=10)  # connects and never sends a byte
        trickle = RawConn(r.port, timeout=10)
        trickle.send("GET /healthz HTTP/1.1\r\n")
        lat = []
        statuses = []
        while time.monotonic() - t_stall < 0.7:  # all of this inside the header timeout
            status, took = healthz_latency(r.port)
            statuses.append(status)
            lat.append(took)
            try:
                trickle.send("X")
            except OSError:
                break
            time.sleep(0.02)
        c.check(statuses and all(s == 200 for s in statuses),
                "while 50 clients stall, another client is served (%d requests, statuses %r)"
                % (len(statuses), sorted(set(statuses))))
        if lat:
            print("       slow-loris: GET /healthz latency with 50 stalled sockets: n=%d median %.2f ms, "
                  "max %.2f ms" % (len(lat), statistics.median(lat) * 1000, max(lat) * 1000), flush=True)
            c.check(max(lat) < 0.25, "GET /healthz latency stays under 250 ms during the stall (max %.1f ms)"
                    % (max(lat) * 1000))
        # Keep trickling a byte every 0.2 s: the header timeout is for the whole head.
        trickle_closed = None
        while time.monotonic() - t_stall < HEADER_TIMEOUT + 4:
            try:
                trickle.send("X")
            except OSError:
                trickle_closed = time.monotonic() - t_stall
                break
            if trickle.wait_closed(0.2) is not None:
                trickle_closed = time.monotonic() - t_stall
                break
        c.check(trickle_closed is not None and trickle_closed < HEADER_TIMEOUT + 2.5,
                "a client trickling one byte every 0.2 s is closed within header_timeout (+2.5 s slack); took %s"
                % ("%.2f s" % trickle_closed if trickle_closed else "never"))
        closed_at = []
        for conn in stalled:
            remaining = max(0.0, t_stall + HEADER_TIMEOUT + 4 - time.monotonic())
            took = conn.wait_closed(remaining)
            closed_at.append(None if took is None else time.monotonic() - t_stall)
        never = sum(1 for t in closed_at if t is None)
        c.eq(never, 0, "all 50 stalled clients are closed within header_timeout + 4 s")
        done = [t for t in closed_at if t is not None]
        if done:
            print("       slow-loris: stalled sockets closed %.2f..%.2f s after they stalled (header_timeout %d s)"
                  % (min(done), max(done), HEADER_TIMEOUT), flush=True)
            c.check(min(done) >= HEADER_TIMEOUT * 0.7,
                    "stalled clients are not closed long before header_timeout (first after %.2f s)" % min(done))
            c.check(max(done) <= HEADER_TIMEOUT + 2.5,
                    "stalled clients are closed about header_timeout after they stalled (last after %.2f s)"
                    % max(done))
        # A client that connects and never sends a byte is closed by the header or the idle timeout.
        remaining = max(0.0, t_stall + max(HEADER_TIMEOUT, IDLE_TIMEOUT) + 4 - time.monotonic())
        took = silent.wait_closed(remaining)
        c.check(took is not None, "a client that never sends a byte is closed within max(header, idle timeout) + 4 s")
        if took is not None:
            print("       a silent connection was closed %.2f s after it opened" % (time.monotonic() - t_stall),
                  flush=True)
        silent.close()
        trickle.close()
        status, took = healthz_latency(r.port)
        c.eq(status, 200, "after the slow-loris clients are gone, /healthz -> 200")
    finally:
        for conn in stalled:
            conn.close()


def check_idle(c, r):
    conn = RawConn(r.port)
    try:
        conn.send(get("/healthz"))
        s, _, _ = conn.read_response()
        c.eq(s, 200, "idle test: first request -> 200")
        took = conn.wait_closed(IDLE_TIMEOUT + 3)
        c.check(took is not None, "an idle keep-alive connection is closed (idle_timeout %d s)" % IDLE_TIMEOUT)
        if took is not None:
            print("       idle keep-alive connection closed after %.2f s" % took, flush=True)
            c.check(IDLE_TIMEOUT * 0.7 <= took <= IDLE_TIMEOUT + 2.5,
                    "it is closed after about idle_timeout_seconds %d (took %.2f s)" % (IDLE_TIMEOUT, took))
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("idle keep-alive: %s" % e)
    finally:
        conn.close()

    # Slow body (R.U.D.Y.): a complete head, then part of the body, then silence.
    for what, data in [
            ("Content-Length body", "POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                                    "Content-Length: 100\r\n\r\n{\"pro" % AUTH),
            ("chunked body", "POST /v1/jobs HTTP/1.1\r\nHost: reel\r\n%sContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n3\r\n{\"p" % AUTH)]:
        conn = RawConn(r.port, timeout=10)
        try:
            conn.send(data)
            took = conn.wait_closed(max(HEADER_TIMEOUT, IDLE_TIMEOUT) + 3)
            c.check(took is not None, "a client that stalls in the middle of a %s is closed (after %s)"
                    % (what, "%.2f s" % took if took is not None else "never"))
        finally:
            conn.close()

    # An active connection (a request every 0.4 s for 3.2 s) stays open.
    conn = RawConn(r.port)
    try:
        ok = 0
        for _ in range(8):
            conn.send(get("/healthz"))
            s, _, _ = conn.read_response()
            ok += s == 200
            time.sleep(0.4)
        c.eq(ok, 8, "a keep-alive connection used every 0.4 s stays open for 3.2 s (idle_timeout %d s)"
             % IDLE_TIMEOUT)
    except (Closed, socket.timeout, ValueError) as e:
        c.fail("active keep-alive connection was closed: %s" % e)
    finally:
        conn.close()


def check_garbage(c, r):
    rnd = random.Random(20240901)
    outcomes = []
    for i in range(12):
        size = rnd.choice([16, 200, 5000, 70000])
        data = bytes(rnd.getrandbits(8) for _ in range(size))
        if i % 3 == 0:
            data = b"GET /" + data  # garbage after a plausible start
        conn = RawConn(r.port, timeout=5)
        try:
            try:
                conn.send(data)
            except OSError:
                pass  # the server may close while we still send
            try:
                status, _, _ = conn.read_response()
                outcome = status
            except (Closed, ValueError, OSError):
                outcome = "closed"
            except socket.timeout:
                outcome = "timeout"
            if outcome != "closed":
                outcome = (outcome, "closed" if conn.wait_closed(HEADER_TIMEOUT + 3) is not None else "open")
            outcomes.append(outcome)
        finally:
            conn.close()
    bad = [o for o in outcomes if o != "closed" and not (isinstance(o, tuple) and o[0] in (400, 408, 414, 431, 501, 505)
                                                         and o[1] == "closed")]
    c.check(not bad, "random-byte floods get a 4xx/5xx then close, or a close (outcomes %r)" % outcomes)
    status, took = healthz_latency(r.port)
    c.eq(status, 200, "after the garbage floods /healthz -> 200")
    st, _, _ = r.request("GET", "/v1/jobs")
    c.eq(st, 200, "after the garbage floods GET /v1/jobs -> 200")


def body(c):
    tmp = tempfile.mkdtemp(prefix="reel-robust-")
    script = h.write_script(tmp, "job.sh", """
        mkdir -p output && head -c 1000 /dev/urandom > output/final_video.mp4
    """)
    try:
        with h.Reeld(service={"workers": 1, "header_timeout_seconds": HEADER_TIMEOUT,
                              "idle_timeout_seconds": IDLE_TIMEOUT, "max_header_bytes": MAX_HEADER_BYTES,
                              "max_body_bytes": MAX_BODY_BYTES},
                     pipeline={"default_backend": "command", "command": [script]}) as r:
            check_keepalive_and_pipelining(c, r)
            check_bodies(c, r)
            check_malformed(c, r)
            check_slowloris(c, r)
            check_idle(c, r)
            check_garbage(c, r)
            c.check(r.proc.poll() is None, "reeld is still running after all of this")
            # An open keep-alive connection does not hold up a clean shutdown.
            conn = RawConn(r.port)
            conn.send(get("/healthz"))
            conn.read_response()
            t = time.monotonic()
            code = r.stop(timeout=10)
            c.eq(code, 0, "reeld exits 0 on SIGTERM")
            c.check(time.monotonic() - t < 5, "and promptly (%.2f s) with an idle connection open"
                    % (time.monotonic() - t))
            conn.close()
            log = r.log_text()
            c.check(h.TOKEN not in log, "the log never contains the bearer token")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
