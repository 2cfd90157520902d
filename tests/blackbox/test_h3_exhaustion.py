"""HTTP/3 resource exhaustion by unauthenticated clients (issue 9): the bounds
of test_h2_exhaustion.py, on HTTP/3 streams, with real `gtlsclient`
processes (Debian ngtcp2-client) as the attackers.

Pinning the server's responses. gtlsclient reads every response byte as it
arrives and extends both flow-control windows by what it read (tried: with
`--max-stream-data-bidi-local=1` a 62 KB /openapi.yaml still arrives in 0.3 s,
the window doubling on every MAX_STREAM_DATA; with `--max-data=1` too it
trickles a byte per round trip unless `--max-window=0 --max-stream-window=0`
turn auto-tuning off, and even then moves ~8 KB/s). What pins it is a window
that starts at zero: `--max-data=0 --max-stream-data-bidi-local=0`. The
server may then send nothing on a request stream (not even the response
HEADERS), the client never reads anything, so it never extends anything:
every response stays on the server, held by the connection.

Keeping the connection alive. gtlsclient sends no PING of its own, so a
pinned connection is otherwise quiet and QUIC's idle timeout ends it (on the
old server too). A small LD_PRELOAD library compiled here with cc calls
ngtcp2_conn_set_keep_alive_timeout on gtlsclient's connection
(REEL_H3_KEEPALIVE_MS): it then sends a PING whenever it has been quiet that
long, as a client that keeps a connection alive does, and QUIC's idle timer
never fires. Everything on the wire is gtlsclient's (libngtcp2, libnghttp3).

A. fds: 12 connections x 100 `GET /docs/swagger-ui.css`, pinned.
A2. memory: 24 connections x 100 `GET /openapi.yaml`, pinned (the document
   used to be copied per stream).
B. downloads: 12 connections x 100 GETs of a signed URL of a finished job
   (200 KB, written by a command-backend pipeline; download URLs need no
   Authorization): at most REEL_H3_MAX_OPEN_FILES (8) files per connection.
During each, reeld's descriptors (/proc/PID/fd) stay near the baseline and
its RSS (VmRSS) bounded, and GET /healthz, POST /v1/jobs and a download over
HTTP/1.1 and GET /healthz over HTTP/3 from a fresh gtlsclient all succeed.
The attackers are then killed (SIGKILL: they send nothing more, and their
`--timeout=3s` makes QUIC's idle timeout 3 s), and fds and RSS must come back
near the baseline.

C. deadlines (idle_timeout_seconds: 2): pinned connections with 100
   /openapi.yaml streams or 20 download streams, sending PINGs every 0.3 s,
   and a connection that had its answer and only sends PINGs, must all be
   closed by the server within 20 s (the gtlsclient processes exit), the
   pinned ones with H3_EXCESSIVE_LOAD (0x107) in CONNECTION_CLOSE and
   `HTTP/3 responses made no progress` in the log. Before the fix all three
   were kept for as long as the client pinged.

The fd and RSS figures are printed (lines starting with `figures:`); RSS is
not checked under AddressSanitizer (its quarantine keeps freed memory).
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402
from h3client import H3Client, H3ClientError  # noqa: E402

SIZE = 200000
H3_EXCESSIVE_LOAD = 0x107
KEEPALIVE_MS = 300

# LD_PRELOAD for gtlsclient: after its connection is made, ngtcp2 is asked to
# send a keep-alive PING whenever the connection was quiet for
# $REEL_H3_KEEPALIVE_MS milliseconds.
KEEPALIVE_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ngtcp2/ngtcp2.h>
#include <stdlib.h>

typedef int (*client_new_fn)(ngtcp2_conn **, const ngtcp2_cid *, const ngtcp2_cid *, const ngtcp2_path *,
                             uint32_t, int, const ngtcp2_callbacks *, int, const ngtcp2_settings *, int,
                             const ngtcp2_transport_params *, const ngtcp2_mem *, void *);

int ngtcp2_conn_client_new_versioned(ngtcp2_conn **pconn, const ngtcp2_cid *dcid, const ngtcp2_cid *scid,
                                     const ngtcp2_path *path, uint32_t version, int callbacks_version,
                                     const ngtcp2_callbacks *callbacks, int settings_version,
                                     const ngtcp2_settings *settings, int params_version,
                                     const ngtcp2_transport_params *params, const ngtcp2_mem *mem,
                                     void *user_data) {
  client_new_fn real = (client_new_fn)dlsym(RTLD_NEXT, "ngtcp2_conn_client_new_versioned");
  if (!real) abort();
  int rv = real(pconn, dcid, scid, path, version, callbacks_version, callbacks, settings_version, settings,
                params_version, params, mem, user_data);
  const char *ms = getenv("REEL_H3_KEEPALIVE_MS");
  if (rv == 0 && ms && atoi(ms) > 0)
    ngtcp2_conn_set_keep_alive_timeout(*pconn, (ngtcp2_duration)atoi(ms) * NGTCP2_MILLISECONDS);
  return rv;
}
"""

CLOSE_LINE = re.compile(r"frm rx \d+ \w+ CONNECTION_CLOSE\(0x1[cd]\) error_code=\S*\(0x([0-9a-f]+)\)")


# ---------------------------------------------------------------- process --

def request_lines(r):
    return sum(1 for line in r.log_text().splitlines() if '"msg":"request"' in line.replace(" ", ""))


def steady(r, expected, timeout=12.0, quiet=1.0):
    """Waits until reeld has logged `expected` more requests (an answered
    stream is logged even while its bytes are pinned), or until neither its
    request count nor its fd count moved for `quiet` seconds (queued
    downloads are logged only when they get a file slot)."""
    pid = r.proc.pid
    start = request_lines(r)
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = (request_lines(r), h.fd_count(pid))
        if now[0] - start >= expected:
            return
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet and now[0] > start:
            return
        time.sleep(0.1)


# ---------------------------------------------------------------- clients --

class Env:
    def __init__(self, r, h3_port, shim, h3, url, data):
        self.r, self.h3_port, self.shim, self.h3 = r, h3_port, shim, h3
        self.url, self.data = url, data


def gtlsclient(env, path, streams, out=None, pinned=True, timeout="3s", extra=()):
    """A gtlsclient process asking for `path` on `streams` streams; pinned:
    with zero flow-control windows, so no response byte can flow. It sends a
    keep-alive PING whenever quiet for KEEPALIVE_MS."""
    cmd = ["gtlsclient", "--no-quic-dump", "--no-http-dump", "--handshake-timeout=10s", "--timeout=" + timeout]
    if out is None:
        cmd.append("-q")
    if pinned:
        cmd += ["--max-data=0", "--max-stream-data-bidi-local=0"]
    cmd += list(extra)
    cmd += ["-n", str(streams), "127.0.0.1", str(env.h3_port), "https://localhost:%d%s" % (env.h3_port, path)]
    e = dict(os.environ, LD_PRELOAD=env.shim, REEL_H3_KEEPALIVE_MS=str(KEEPALIVE_MS))
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, env=e)


def kill_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def make_job(r, copies):
    st, _, job = r.json("POST", "/v1/jobs", {"prompt": "h3 exhaustion test"})
    if st != 202:
        return None, None
    r.wait_job(job["id"], "finished", timeout=60)
    st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job["id"])
    with open(os.path.join(copies, "last.bin"), "rb") as f:
        data = f.read()
    u = urllib.parse.urlsplit(art["url"])
    return u.path + "?" + u.query, data


def others_served(c, env, what):
    """What every attack must leave working for everyone else."""
    r = env.r
    try:
        st, _, _ = r.request("GET", "/healthz", token=False, timeout=10)
    except OSError as e:
        st = "error %s" % e
    c.eq(st, 200, "%s: GET /healthz over HTTP/1.1 -> 200" % what)
    try:
        st, _, _ = r.json("POST", "/v1/jobs", {"prompt": "during " + what}, timeout=10)
    except OSError as e:
        st = "error %s" % e
    c.eq(st, 202, "%s: POST /v1/jobs over HTTP/1.1 -> 202" % what)
    try:
        st, _, got = r.request("GET", env.url, token=False, timeout=10)
    except OSError as e:
        st, got = "error %s" % e, b""
    c.check(st == 200 and got == env.data, "%s: a download over HTTP/1.1 -> 200 with the file (got %s, %d bytes)"
            % (what, st, len(got)))
    st, _, got, text = env.h3.request("127.0.0.1", env.h3_port, "https://localhost:%d/healthz" % env.h3_port,
                                      timeout=10)
    c.check(st == 200, "%s: GET /healthz over HTTP/3 from a fresh gtlsclient -> 200 (got %s%s)"
            % (what, st, "" if st else ": " + text.strip()[-200:]))


def run_attack(c, env, what, n_conns, streams, path, fds_slack, rss_slack_kb):
    r = env.r
    pid = r.proc.pid
    time.sleep(0.3)
    fds0, rss0 = h.fd_count(pid), h.rss_kb(pid)
    procs = [gtlsclient(env, path, streams) for _ in range(n_conns)]
    steady(r, n_conns * streams)
    fds1, rss1 = h.fd_count(pid), h.rss_kb(pid)
    alive = sum(1 for p in procs if p.poll() is None)
    c.check(alive == n_conns, "%s: the %d attacking clients are connected and pinned (%d still running)"
            % (what, n_conns, alive))
    others_served(c, env, what)
    c.check(r.running(), "%s: reeld still running" % what)
    fds_mid, rss_mid = h.fd_count(pid), h.rss_kb(pid)
    fds1, rss1 = max(fds1, fds_mid), max(rss1, rss_mid)
    c.check(fds1 <= fds0 + fds_slack, "%s: fds during the attack stay near the baseline (%d before, %d during, "
            "allowed %d)" % (what, fds0, fds1, fds0 + fds_slack))
    check_rss = not h.sanitized()
    if check_rss:
        c.check(rss1 - rss0 <= rss_slack_kb, "%s: RSS during the attack stays bounded (%d KB before, %d KB during, "
                "allowed +%d KB)" % (what, rss0, rss1, rss_slack_kb))
    kill_all(procs)
    # killed clients send nothing: QUIC's idle timeout (3 s, from --timeout) ends their connections
    h.wait_for(lambda: h.fd_count(pid) <= fds0 + 2, 20)
    fds2 = h.fd_count(pid)
    time.sleep(0.5)
    rss2 = h.rss_kb(pid)
    c.check(fds2 <= fds0 + 2, "%s: fds back to the baseline after the clients are gone (%d before, %d after)"
            % (what, fds0, fds2))
    if check_rss:
        h.wait_for(lambda: h.rss_kb(pid) - rss0 <= 8192, 5)
        rss2 = h.rss_kb(pid)
        c.check(rss2 - rss0 <= 8192, "%s: RSS back near the baseline after the clients are gone (%d KB before, "
                "%d KB after)" % (what, rss0, rss2))
    else:
        print("skip   %s: RSS checks (AddressSanitizer build: its quarantine keeps freed memory)" % what)
    print("figures: %s: fds %d -> %d -> %d, RSS %d -> %d -> %d KB" % (what, fds0, fds1, fds2, rss0, rss1, rss2))
    sys.stdout.flush()


def start_server(certs, script, idle, limit=None):
    """A Reeld with http:// and h3:// listeners (and, with limit, an open-file
    limit set by a wrapper script that execs reeld: same pid)."""
    r = h.Reeld(start=False, service={
        "workers": 1, "idle_timeout_seconds": idle,
        "tls": {"cert_file": os.path.join(certs, "server.pem"), "key_file": os.path.join(certs, "server-key.pem")}},
        pipeline={"default_backend": "command", "command": [script]})
    h3_port = h.free_port()
    r.config["service"]["listen"] = ["127.0.0.1:%d" % r.port, "h3://127.0.0.1:%d" % h3_port]
    if limit:
        r.binary = h.write_script(r.tmp, "limited.sh", 'ulimit -n %d\nexec "%s" "$@"\n' % (limit, r.binary))
    try:
        r.start()
    except BaseException:
        r.close()
        raise
    return r, h3_port


# ---------------------------------------------------------------- attacks --

def check_attacks(c, tmp, certs, script, copies, shim, h3):
    r, h3_port = start_server(certs, script, idle=30, limit=1024)
    with r:
        url, data = make_job(r, copies)
        if not c.check(url is not None, "a finished job with an artifact to download"):
            return
        env = Env(r, h3_port, shim, h3, url, data)
        st, _, css = r.request("GET", "/docs/swagger-ui.css", token=False)
        c.eq(st, 200, "/docs/swagger-ui.css is served")
        run_attack(c, env, "A fds (12 x 100 /docs/swagger-ui.css)", 12, 100, "/docs/swagger-ui.css",
                   fds_slack=16, rss_slack_kb=48 * 1024)
        run_attack(c, env, "A2 memory (24 x 100 /openapi.yaml)", 24, 100, "/openapi.yaml",
                   fds_slack=16, rss_slack_kb=64 * 1024)
        run_attack(c, env, "B downloads (12 x 100 signed URLs)", 12, 100, url,
                   fds_slack=12 * 8 + 16, rss_slack_kb=48 * 1024)
        st, _, css2 = r.request("GET", "/docs/swagger-ui.css", token=False)
        c.check(st == 200 and css2 == css, "the stylesheet is still served whole after the attacks")
        st, _, got, _ = h3.request("127.0.0.1", h3_port, "https://localhost:%d%s" % (h3_port, url), timeout=20)
        c.check(st == 200 and got == data, "a download over HTTP/3 works after the attacks (got %s, %d bytes)"
                % (st, len(got)))
        bad = [line for line in r.log_text().splitlines()
               if '"msg":"request"' in line.replace(" ", "") and '"protocol":"HTTP/3"' in line.replace(" ", "")
               and '"status":404' in line.replace(" ", "")]
        c.check(not bad, "no HTTP/3 stream of the attacks was answered 404 (%d were)" % len(bad))


def check_deadlines(c, tmp, certs, script, copies, shim, h3):
    r, h3_port = start_server(certs, script, idle=2)
    with r:
        url, data = make_job(r, copies)
        if not c.check(url is not None, "C: a finished job with an artifact to download"):
            return
        env = Env(r, h3_port, shim, h3, url, data)
        pid = r.proc.pid
        time.sleep(0.3)
        fds0, rss0 = h.fd_count(pid), h.rss_kb(pid)
        kinds = (("pinned /openapi.yaml x 100", "/openapi.yaml", 100, True),
                 ("pinned download x 20", url, 20, True),
                 ("answered, then only PINGs", "/healthz", 1, False))
        outs, procs = [], []
        for i, (_, path, n, pinned) in enumerate(kinds):
            out = open(os.path.join(tmp, "deadline-%d.txt" % i), "wb")
            outs.append(out)
            # --timeout=60s: the client's own QUIC idle timeout plays no part
            procs.append(gtlsclient(env, path, n, out=out, pinned=pinned, timeout="60s"))
        start = time.monotonic()
        time.sleep(0.5)
        others_served(c, env, "C")
        ended = {}
        fds1, rss1 = fds0, rss0
        while time.monotonic() - start < 20 and len(ended) < len(procs):
            for i, p in enumerate(procs):
                if i not in ended and p.poll() is not None:
                    ended[i] = time.monotonic() - start
            fds1, rss1 = max(fds1, h.fd_count(pid)), max(rss1, h.rss_kb(pid))
            time.sleep(0.1)
        kill_all(procs)
        for out in outs:
            out.close()
        for i, (what, _, _, pinned) in enumerate(kinds):
            with open(os.path.join(tmp, "deadline-%d.txt" % i), "rb") as f:
                text = f.read().decode("utf-8", "replace")
            codes = [int(m.group(1), 16) for m in CLOSE_LINE.finditer(text)]
            pings = text.count("PING(0x01)")
            c.check(i in ended, "C: %s: closed by the server within 20 s with a 2 s deadline although the client "
                    "sent PINGs every %d ms (%s)" % (what, KEEPALIVE_MS,
                                                     "after %.1f s" % ended[i] if i in ended else "still open"))
            if pinned:
                c.check(H3_EXCESSIVE_LOAD in codes, "C: %s: CONNECTION_CLOSE with H3_EXCESSIVE_LOAD (0x107) "
                        "(codes received: %s)" % (what, ", ".join("0x%x" % x for x in codes) or "none"))
            print("figures: C %s: %s, %d PING frames in gtlsclient's output"
                  % (what, "closed after %.1f s" % ended[i] if i in ended else "open after 20 s", pings))
        n = r.log_text().count("HTTP/3 responses made no progress")
        c.check(n >= 2, "C: the log says `HTTP/3 responses made no progress` for the pinned connections (%d lines)" % n)
        h.wait_for(lambda: h.fd_count(pid) <= fds0 + 2, 10)
        fds2, rss2 = h.fd_count(pid), h.rss_kb(pid)
        c.check(fds2 <= fds0 + 2, "C: fds back to the baseline (%d before, %d after)" % (fds0, fds2))
        print("figures: C deadlines: fds %d -> %d -> %d, RSS %d -> %d -> %d KB" % (fds0, fds1, fds2, rss0, rss1, rss2))


def body(c):
    for tool, pkg in (("gtlsclient", "ngtcp2-client"), ("cc", "gcc")):
        if not shutil.which(tool):
            c.fail("%s is needed (apt-get install %s; scripts/install-deps.sh --test)" % (tool, pkg))
            return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    tmp = tempfile.mkdtemp(prefix="reel-h3-exhaustion-")
    try:
        certs = os.path.join(tmp, "certs")
        subprocess.run(["bash", os.path.join(h.SOURCE_DIR, "scripts", "dev-cert.sh"), certs],
                       capture_output=True, check=True, timeout=60)
        copies = os.path.join(tmp, "copies")
        os.makedirs(copies)
        script = h.write_script(copies, "job.sh", """
            set -e
            mkdir -p output
            head -c %d /dev/urandom > output/final_video.mp4
            cp output/final_video.mp4 %s/last.bin
        """ % (SIZE, copies))
        try:
            h3 = H3Client(tmp)
        except H3ClientError as e:
            c.fail(str(e))
            return
        src, shim = os.path.join(tmp, "keepalive.c"), os.path.join(tmp, "keepalive.so")
        with open(src, "w", encoding="utf-8") as f:
            f.write(KEEPALIVE_C)
        out = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", shim, src, "-ldl"], capture_output=True,
                             timeout=60)
        if not c.check(out.returncode == 0, "the keep-alive library for gtlsclient compiles (needs libngtcp2-dev)"):
            print(out.stderr.decode("utf-8", "replace")[-400:])
            return
        check_attacks(c, tmp, certs, script, copies, shim, h3)
        check_deadlines(c, tmp, certs, script, copies, shim, h3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
