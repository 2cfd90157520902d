"""HTTP/2 resource exhaustion by unauthenticated clients (issue 9), with a raw
h2c client written here: frames by hand over a socket, HPACK as literal
fields without indexing and without Huffman coding.

Each attack opens h2c connections that set SETTINGS_INITIAL_WINDOW_SIZE=0
(so no response DATA can ever flow) and then ask for many responses that are
never read:

A. fds: 12 connections x 100 `GET /docs/swagger-ui.css`. Before the fix every
   stream held an open file: 1200 > the 1024 open-file limit reeld runs with
   here, so everyone else got errors (and the streams hitting EMFILE a 404).
B. downloads: 12 connections x 100 GETs of a signed artifact URL: at most
   REEL_H2_MAX_OPEN_FILES (8) files may be open per connection.
C. memory: 40 connections x 100 `GET /openapi.yaml`: before the fix each
   stream copied the 58 KB document (RSS grew by ~250 MB).
During each attack /healthz, POST /v1/jobs and a download must succeed on
other connections, the fd count must stay near its baseline, and after the
attack connections close fds and RSS must come back near where they were.

D. deadlines (idle_timeout_seconds: 2): a connection that only sends a PING
   every 0.5 s, one with a pending response and PINGs, and one with a pending
   response and a 1-byte WINDOW_UPDATE on its stream every 0.5 s must all be
   closed (inbound frames do not reset the deadline); before the fix they were
   kept for ever.
E. floods: 3000 PINGs, or 1500 streams opened and reset, end the connection
   with GOAWAY ENHANCE_YOUR_CALM (0xb).
F. the descriptor reserve: with an open-file limit of 256, 300 idle TCP
   connections: the ones over the ceiling get `503` (not a silent close), and
   reeld serves normally once they go.

The fd and RSS figures are printed (lines starting with `figures:`).
"""

import hashlib
import json
import os
import resource
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, END_HEADERS = 0x1, 0x4
ENHANCE_YOUR_CALM = 0xb
SIZE = 200000


# ---------------------------------------------------------------- h2c --

def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """A literal field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    name, value = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def request_headers(stream_id, path, method="GET"):
    block = b"".join(hpack_literal(n, v) for n, v in (
        (":method", method), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", path)))
    return frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block)


def h2c_connect(port, window=0):
    """An h2c connection (prior knowledge) whose SETTINGS set the initial
    stream window to `window` (0: the server may send no response DATA)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    settings = struct.pack(">HI", 0x4, window)  # SETTINGS_INITIAL_WINDOW_SIZE
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))
    return s


def attack(port, n_conns, streams, path):
    """Opens n_conns stalled connections, each asking for `streams` responses."""
    socks = []
    for _ in range(n_conns):
        s = h2c_connect(port)
        s.sendall(b"".join(request_headers(1 + 2 * i, path) for i in range(streams)))
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def read_until_goaway(sock, timeout):
    """Reads frames until GOAWAY (returns its error code), EOF or timeout
    (returns None)."""
    sock.settimeout(0.5)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while len(buf) >= 9:
            length = struct.unpack(">I", b"\0" + buf[:3])[0]
            if len(buf) < 9 + length:
                break
            ftype, payload = buf[3], buf[9:9 + length]
            buf = buf[9 + length:]
            if ftype == GOAWAY and len(payload) >= 8:
                return struct.unpack(">I", payload[4:8])[0]
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return None


# ---------------------------------------------------------------- process --

def settle(pid, fds_max, timeout=15.0):
    """Waits until reeld holds at most fds_max descriptors; returns the count."""
    h.wait_for(lambda: h.fd_count(pid) <= fds_max, timeout)
    return h.fd_count(pid)


def start_limited(limit, **kw):
    """A Reeld whose open-file limit (soft and hard) is `limit`, set by a
    wrapper script that execs reeld (same pid)."""
    r = h.Reeld(start=False, **kw)
    wrapper = h.write_script(r.tmp, "limited.sh", 'ulimit -n %d\nexec "%s" "$@"\n' % (limit, r.binary))
    r.binary = wrapper
    r.start()
    return r


# ---------------------------------------------------------------- other clients --

def make_job(r, copies):
    st, _, job = r.json("POST", "/v1/jobs", {"prompt": "exhaustion test"})
    if st != 202:
        return None, None
    r.wait_job(job["id"], "finished", timeout=60)
    st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job["id"])
    with open(os.path.join(copies, "last.bin"), "rb") as f:
        data = f.read()
    u = urllib.parse.urlsplit(art["url"])
    return u.path + "?" + u.query, data


def others_served(c, r, what, url, data):
    """The checks every attack must leave working for everyone else."""
    try:
        st, _, _ = r.request("GET", "/healthz", token=False, timeout=10)
    except OSError as e:
        st = "error %s" % e
    c.eq(st, 200, "%s: GET /healthz on another connection -> 200" % what)
    try:
        st, _, _ = r.json("POST", "/v1/jobs", {"prompt": "during " + what}, timeout=10)
    except OSError as e:
        st = "error %s" % e
    c.eq(st, 202, "%s: POST /v1/jobs on another connection -> 202" % what)
    try:
        st, _, got = r.request("GET", url, token=False, timeout=10)
    except OSError as e:
        st, got = "error %s" % e, b""
    c.check(st == 200 and got == data, "%s: a download on another connection -> 200 with the file (got %s, %d bytes)"
            % (what, st, len(got)))


def run_attack(c, r, what, n_conns, streams, path, url, data, fds_slack, rss_slack_kb):
    pid = r.proc.pid
    time.sleep(0.3)
    fds0, rss0 = h.fd_count(pid), h.rss_kb(pid)
    socks = attack(r.port, n_conns, streams, path)
    # wait until the server has taken in every request (its fd count stops moving)
    time.sleep(1.5)
    fds1, rss1 = h.fd_count(pid), h.rss_kb(pid)
    others_served(c, r, what, url, data)
    c.check(r.running(), "%s: reeld still running" % what)
    c.check(fds1 <= fds0 + n_conns + fds_slack,
            "%s: fds during the attack stay near the baseline (%d before, %d during, allowed %d)"
            % (what, fds0, fds1, fds0 + n_conns + fds_slack))
    check_rss = not h.sanitized()
    if check_rss:
        c.check(rss1 - rss0 <= rss_slack_kb,
                "%s: RSS during the attack stays near the baseline (%d KB before, %d KB during, allowed +%d KB)"
                % (what, rss0, rss1, rss_slack_kb))
    close_all(socks)
    fds2 = settle(pid, fds0 + 2)
    time.sleep(0.5)
    rss2 = h.rss_kb(pid)
    c.check(fds2 <= fds0 + 2, "%s: fds back to the baseline after the connections close (%d before, %d after)"
            % (what, fds0, fds2))
    if check_rss:
        c.check(rss2 - rss0 <= 8192,
                "%s: RSS back near the baseline after the connections close (%d KB before, %d KB after)"
                % (what, rss0, rss2))
    else:
        print("skip   %s: RSS checks (AddressSanitizer build: its quarantine keeps freed memory)" % what)
    print("figures: %s: fds %d -> %d -> %d, RSS %d -> %d -> %d KB" % (what, fds0, fds1, fds2, rss0, rss1, rss2))
    sys.stdout.flush()


# ---------------------------------------------------------------- attacks --

def check_attacks(c, copies, script):
    with start_limited(1024, service={"workers": 1, "idle_timeout_seconds": 60},
                       pipeline={"default_backend": "command", "command": [script]}) as r:
        url, data = make_job(r, copies)
        if not c.check(url is not None, "a finished job with an artifact to download"):
            return
        st, _, css = r.request("GET", "/docs/swagger-ui.css", token=False)
        c.eq(st, 200, "/docs/swagger-ui.css is served")
        run_attack(c, r, "A fds (12 x 100 /docs/swagger-ui.css)", 12, 100, "/docs/swagger-ui.css", url, data,
                   fds_slack=16, rss_slack_kb=48 * 1024)
        run_attack(c, r, "B downloads (12 x 100 signed URLs)", 12, 100, url, url, data,
                   fds_slack=12 * 8 + 16, rss_slack_kb=48 * 1024)
        run_attack(c, r, "C memory (40 x 100 /openapi.yaml)", 40, 100, "/openapi.yaml", url, data,
                   fds_slack=16, rss_slack_kb=64 * 1024)
        st, _, css2 = r.request("GET", "/docs/swagger-ui.css", token=False)
        c.check(st == 200 and css2 == css, "the stylesheet is still served whole after the attacks")
        check_floods(c, r)
        bad = [line for line in r.log_text().splitlines()
               if '"msg":"request"' in line.replace(" ", "") and "swagger-ui.css" in line
               and '"status":404' in line.replace(" ", "")]
        c.check(not bad, "no stream of the attacks was answered 404 (%d were)" % len(bad))


def check_floods(c, r):
    s = h2c_connect(r.port, window=65535)
    s.sendall(b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(3000)))
    code = read_until_goaway(s, 10)
    c.eq(code, ENHANCE_YOUR_CALM, "E: a PING flood ends the connection with GOAWAY ENHANCE_YOUR_CALM")
    s.close()
    s = h2c_connect(r.port, window=65535)
    burst = []
    for i in range(1500):
        sid = 1 + 2 * i
        burst.append(request_headers(sid, "/healthz"))
        burst.append(frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8)))  # CANCEL
    try:
        s.sendall(b"".join(burst))
    except OSError:
        pass
    code = read_until_goaway(s, 10)
    c.eq(code, ENHANCE_YOUR_CALM, "E: a stream-reset flood ends the connection with GOAWAY ENHANCE_YOUR_CALM")
    s.close()
    st, _, _ = r.request("GET", "/healthz", token=False, timeout=10)
    c.eq(st, 200, "E: reeld serves others after the floods")


def drip(sock, stop, window_stream):
    """Sends a PING (and a 1-byte WINDOW_UPDATE on window_stream, if any) every 0.5 s."""
    i = 0
    while not stop.is_set():
        try:
            sock.sendall(frame(PING, 0, 0, struct.pack(">Q", i)))
            if window_stream:
                sock.sendall(frame(WINDOW_UPDATE, 0, window_stream, struct.pack(">I", 1)))
        except OSError:
            return
        i += 1
        stop.wait(0.5)


def closed_within(sock, timeout):
    """True when the server closes sock (EOF or reset) within timeout seconds;
    everything it sends meanwhile is read and discarded."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def check_deadlines(c):
    with h.Reeld(service={"idle_timeout_seconds": 2}) as r:
        idle = h2c_connect(r.port, window=65535)
        pending = h2c_connect(r.port)
        pending.sendall(request_headers(1, "/openapi.yaml"))
        trickle = h2c_connect(r.port)
        trickle.sendall(request_headers(1, "/openapi.yaml"))
        stop = threading.Event()
        threads = [threading.Thread(target=drip, args=(idle, stop, 0)),
                   threading.Thread(target=drip, args=(pending, stop, 0)),
                   threading.Thread(target=drip, args=(trickle, stop, 1))]
        for t in threads:
            t.start()
        results = {}

        def watch(name, sock):
            results[name] = closed_within(sock, 20)
        watchers = [threading.Thread(target=watch, args=(n, s_)) for n, s_ in
                    (("idle", idle), ("pending", pending), ("trickle", trickle))]
        for t in watchers:
            t.start()
        for t in watchers:
            t.join()
        stop.set()
        for t in threads:
            t.join()
        c.check(results.get("idle"), "D: a connection sending only PINGs is closed by idle_timeout_seconds")
        c.check(results.get("pending"),
                "D: a connection with an unread response and PINGs is closed (send-progress deadline)")
        c.check(results.get("trickle"),
                "D: a connection granting 1-byte WINDOW_UPDATEs to an unread response is closed")
        close_all([idle, pending, trickle])
        st, _, _ = r.request("GET", "/healthz", token=False, timeout=10)
        c.eq(st, 200, "D: reeld serves others meanwhile")


def check_reserve(c):
    with start_limited(256) as r:
        pid = r.proc.pid
        fds0 = h.fd_count(pid)
        socks, answers = [], []
        for _ in range(300):
            try:
                socks.append(socket.create_connection(("127.0.0.1", r.port), timeout=5))
            except OSError:
                break
        time.sleep(1.0)
        fds1 = h.fd_count(pid)
        for s in socks:
            s.settimeout(0.05)
            try:
                got = s.recv(200)
            except (socket.timeout, OSError):
                continue
            if got:
                answers.append(got)
        c.check(any(a.startswith(b"HTTP/1.1 503") for a in answers),
                "F: connections over the descriptor ceiling are answered 503 (%d answers seen)" % len(answers))
        c.check(fds1 <= 256 - 32, "F: reeld keeps a reserve of descriptors free (%d of 256 in use)" % fds1)
        c.check(r.running(), "F: reeld still running")
        close_all(socks)
        settle(pid, fds0 + 2)
        st, _, _ = r.request("GET", "/healthz", token=False, timeout=10)
        c.eq(st, 200, "F: reeld serves normally once the connections are gone")
        st, _, _ = r.json("POST", "/v1/jobs", {"prompt": "after the reserve test"}, timeout=10)
        c.eq(st, 202, "F: POST /v1/jobs works after the connections are gone")
        print("figures: F reserve (300 idle connections, limit 256): fds %d -> %d -> %d"
              % (fds0, fds1, h.fd_count(pid)))


def body(c):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # our own sockets
    copies = tempfile.mkdtemp(prefix="reel-exhaustion-")
    script = h.write_script(copies, "job.sh", """
        set -e
        mkdir -p output
        head -c %d /dev/urandom > output/final_video.mp4
        cp output/final_video.mp4 %s/last.bin
    """ % (SIZE, copies))
    try:
        check_attacks(c, copies, script)
        check_deadlines(c)
        check_reserve(c)
    finally:
        shutil.rmtree(copies, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
