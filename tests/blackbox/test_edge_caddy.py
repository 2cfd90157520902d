"""reeld behind the Caddy edge of deploy/caddy/Caddyfile (the file itself, run
with environment variables on loopback ports), with real HTTP/3 clients.

    client --HTTP/3 (QUIC, UDP) or h2 (TCP)--> Caddy (edge) --HTTP/2 over TLS--> reeld https://

reeld listens on http:// (the harness's own health checks) and https:// (for
Caddy, with scripts/dev-cert.sh certificates made in the test's temporary
directory), trusts X-Forwarded-* from 127.0.0.1 and builds download URLs on
the edge (public_base_url). Caddy runs with HOME and XDG_* in the temporary
directory and is stopped at the end.

HTTP/3 client: `gtlsclient` (Debian ngtcp2-client), which cannot add request
headers. Requests that need `Authorization` and `Content-Type` run the same
gtlsclient with a small LD_PRELOAD library (compiled here with cc) that
appends header fields to the request gtlsclient submits to nghttp3; the QUIC
and HTTP/3 stack is gtlsclient's own. (A second Caddy acting as HTTP/3 client,
`transport http { versions 3 }`, does not work with Caddy 2.6.2: that
version accepts the option and silently proxies over HTTP/1.1 on TCP; HTTP/3
to upstreams arrived in Caddy 2.8.) Every HTTP/3 request is confirmed as
HTTP/3 in the edge's access log ("proto":"HTTP/3.0").

1. The Caddyfile adapts in its production shape (automatic HTTPS on :443,
   HTTP/3 on, HTTP/2 + TLS to reeld, /healthz health checks, streaming).
2. gtlsclient GET /healthz through the edge -> 200 + body; reeld's access log
   has that request (by its X-Request-Id) over HTTP/2, scheme https, peer
   127.0.0.1 (Caddy) and the client (::1) as remote; Caddy's active health
   check reached reeld's /healthz over HTTP/2.
3. A job over HTTP/3 through the edge: POST /v1/jobs -> 202 (HTTP/3.0 in the
   edge log, HTTP/2 at reeld), without the token -> 401, polled to finished,
   its logs, its artifact URL (on the edge), the artifact downloaded whole
   over HTTP/3 with plain gtlsclient (signed URL, no headers) byte for byte,
   a Range request with curl over HTTP/2 -> 206, cancel -> 409.
4. curl --http2 from 127.0.0.2: Alt-Svc advertises h3 on the edge port, and
   reeld logs 127.0.0.2 as the client (even with a forged X-Forwarded-For).
5. Server-sent events through the edge: a running job's event stream with
   curl --http2 shows job.started and job.progress while the job still waits
   (Caddy passes events as they come, it does not buffer the stream) and ends
   after job.finished; the finished job's stream over HTTP/3 with gtlsclient
   replays its whole life and ends.
6. The edge's access log: no /healthz lines, no token, download signatures
   masked; /metrics is not served at the edge.
7. Caddy exits on SIGTERM and no caddy process is left.
A missing caddy, gtlsclient, curl or cc is a failure, never a skip.
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402
from h3client import H3Client, H3ClientError  # noqa: E402

CADDYFILE = os.path.join(h.SOURCE_DIR, "deploy", "caddy", "Caddyfile")
DEV_CERT = os.path.join(h.SOURCE_DIR, "scripts", "dev-cert.sh")
SIZE = 2 * 1024 * 1024  # the artifact: large enough to stream in many QUIC packets
MARKER = "edge-marker"



def _die_with_parent():
    """In the child before exec: SIGTERM it when the test process dies, so
    no caddy outlives a killed test (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def free_tcp_udp_port():
    """A port free for both TCP and UDP on all addresses a moment ago (the
    edge serves h1/h2 on TCP and HTTP/3 on UDP on the same port)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as t:
            t.bind(("::", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("::", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


class Edge:
    """Shared state: temp dir, ports, certificates, the shim, the processes."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.certs = os.path.join(tmp, "certs")
        self.port = free_tcp_udp_port()        # edge: TCP (h1, h2) and UDP (h3)
        self.http_port = h.free_port()         # edge: redirect to https
        self.reeld_tls_port = h.free_port()    # reeld's https:// listener
        self.access_log = os.path.join(tmp, "edge-access.log")
        self.caddy_log = os.path.join(tmp, "caddy.log")
        self.h3client = None
        self.caddy = None
        self.request_ids = set()  # X-Request-Id of every answer that came through the edge
        self.seq = 0

    def base(self):
        return "https://localhost:%d" % self.port

    # -- caddy --

    def caddy_env(self, extra):
        home = os.path.join(self.tmp, "caddy-home")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
        env.update({"HOME": home, "XDG_DATA_HOME": os.path.join(home, "data"),
                    "XDG_CONFIG_HOME": os.path.join(home, "config")})
        env.update(extra)
        return env

    def start_caddy(self):
        env = self.caddy_env({
            "REEL_DOMAIN": "localhost",
            "REEL_TLS_MODE": "files",
            "REEL_TLS_CERT": os.path.join(self.certs, "server.pem"),
            "REEL_TLS_KEY": os.path.join(self.certs, "server-key.pem"),
            "REEL_UPSTREAM": "https://127.0.0.1:%d" % self.reeld_tls_port,
            "REEL_UPSTREAM_CA": os.path.join(self.certs, "ca.pem"),
            "REEL_HTTP_PORT": str(self.http_port),
            "REEL_HTTPS_PORT": str(self.port),
            "REEL_ACCESS_LOG": self.access_log,
            "REEL_HEALTH_INTERVAL": "1s",
        })
        with open(self.caddy_log, "ab") as log:
            self.caddy = subprocess.Popen(
                ["caddy", "run", "--config", CADDYFILE, "--adapter", "caddyfile"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp, env=env,
                preexec_fn=_die_with_parent)

    def caddy_alive(self):
        return self.caddy is not None and self.caddy.poll() is None

    def stop_caddy(self):
        """SIGTERM, then SIGKILL after 15 s; returns the exit status."""
        if self.caddy is None:
            return None
        if self.caddy.poll() is None:
            self.caddy.send_signal(signal.SIGTERM)
            try:
                self.caddy.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.caddy.kill()
                self.caddy.wait()
        return self.caddy.returncode

    def caddy_tail(self, lines=20):
        try:
            with open(self.caddy_log, encoding="utf-8", errors="replace") as f:
                tail = f.read().splitlines()[-lines:]
        except OSError:
            tail = []
        return "\n".join("  | " + line[:400] for line in tail) or "  | (caddy wrote nothing)"

    def access_entries(self):
        """The edge's JSON access log lines, parsed."""
        try:
            with open(self.access_log, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def edge_proto(self, method, uri_prefix, status):
        """The client-leg protocol Caddy logged for the latest request with
        this method, URI prefix and status (waits up to 5 s for the line)."""
        def find():
            for e in reversed(self.access_entries()):
                req = e.get("request", {})
                if (req.get("method") == method and req.get("uri", "").startswith(uri_prefix)
                        and e.get("status") == status):
                    return req.get("proto") or "?"
            return None
        return h.wait_for(find, 5) or "(no access log line)"

    # -- clients --

    def h3(self, path, method=None, data=None, auth=False, host="::1", timeout=30):
        """One request over HTTP/3 with gtlsclient to the edge (connecting to
        host, :authority localhost:PORT). auth=True adds the bearer token and,
        with data, Content-Type: application/json. Returns (status, headers,
        body bytes, gtlsclient output); status 0 when no answer arrived."""
        extra = {}
        if auth:
            extra["authorization"] = "Bearer " + h.TOKEN
            if data is not None:
                extra["content-type"] = "application/json"
        status, headers, body, text = self.h3client.request(host, self.port, self.base() + path, method=method,
                                                            data=data, headers=extra, timeout=timeout)
        if "x-request-id" in headers:
            self.request_ids.add(headers["x-request-id"])
        return status, headers, body, text

    def curl(self, url, args=(), interface=None):
        """curl over HTTP/2 on TCP to the edge, verifying the dev CA.
        Returns (status, headers, body)."""
        self.seq += 1
        hdr = os.path.join(self.tmp, "curl-h-%d" % self.seq)
        body_path = os.path.join(self.tmp, "curl-b-%d" % self.seq)
        cmd = ["curl", "-sS", "--noproxy", "*", "--http2", "--max-time", "30",
               "--cacert", os.path.join(self.certs, "ca.pem"),
               "--resolve", "localhost:%d:127.0.0.1" % self.port,
               "-D", hdr, "-o", body_path] + list(args)
        if interface:
            cmd += ["--interface", interface]
        cmd.append(url)
        subprocess.run(cmd, capture_output=True, timeout=40)
        status, headers, body = 0, {}, b""
        try:
            with open(hdr, encoding="latin-1") as f:
                lines = f.read().splitlines()
            with open(body_path, "rb") as f:
                body = f.read()
        except OSError:
            lines = []
        for line in lines:
            if line.startswith("HTTP/"):
                parts = line.split()
                status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                headers = {"_version": parts[0]}
            elif ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "x-request-id" in headers:
            self.request_ids.add(headers["x-request-id"])
        return status, headers, body


def reeld_requests(r):
    """reeld's access log lines ("msg":"request"), parsed."""
    out = []
    for line in r.log_text().splitlines():
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("msg") == "request":
            out.append(doc)
    return out


def reeld_line(r, request_id):
    """reeld's access log line for request_id (waits up to 5 s), or {}."""
    if not request_id:
        return {}
    found = h.wait_for(lambda: [d for d in reeld_requests(r) if d.get("request_id") == request_id], 5)
    return found[0] if found else {}


def failure_detail(out, hint=""):
    """"" for a process that exited 0, else its status, stderr tail and hint."""
    if out.returncode == 0:
        return ""
    return ": exit %d%s\n%s" % (out.returncode, hint, out.stderr.decode("utf-8", "replace").strip()[-1500:])


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def h3_json(body):
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


# ------------------------------------------------------------------ checks --

def check_production_shape(c, e):
    env = e.caddy_env({"REEL_UPSTREAM": "https://reel-1.internal:8443",
                       "REEL_UPSTREAM_CA": "/etc/reel/ca.pem"})
    out = subprocess.run(["caddy", "adapt", "--config", CADDYFILE, "--adapter", "caddyfile"],
                         capture_output=True, env=env, cwd=e.tmp, timeout=30)
    if not c.check(out.returncode == 0, "caddy adapt accepts deploy/caddy/Caddyfile with only the upstream set"
                   + failure_detail(out)):
        return
    cfg = json.loads(out.stdout)
    text = json.dumps(cfg)
    srv = cfg["apps"]["http"]["servers"]["srv0"]
    c.eq(srv.get("listen"), [":443"], "production shape: clients on :443")
    c.check("h3" in srv.get("protocols", []), "production shape: HTTP/3 to clients is on")
    c.check("load_files" not in text, "production shape: automatic HTTPS (no certificate files)")
    c.check('"versions": ["2"]' in text and '"root_ca_pem_files": ["/etc/reel/ca.pem"]' in text,
            "production shape: HTTP/2 over TLS to reeld, trusting REEL_UPSTREAM_CA")
    c.check('"dial": "reel-1.internal:8443"' in text, "production shape: the upstream is REEL_UPSTREAM")
    c.check('"uri": "/healthz"' in text and '"flush_interval": -1' in text,
            "production shape: active health check of /healthz, responses streamed")


def start_edge(c, e, r):
    e.start_caddy()
    got = h.wait_for(lambda: (not e.caddy_alive()) or e.curl(e.base() + "/healthz")[0] == 200, 20, 0.2)
    if not e.caddy_alive():
        c.fail("caddy exited at start with status %s\n%s" % (e.caddy.returncode, e.caddy_tail()))
        return False
    if not c.check(bool(got), "Caddy serves https://localhost:%d/healthz from reeld within 20 s" % e.port):
        sys.stderr.write("caddy log tail:\n%s\nreeld log tail:\n%s\n" % (e.caddy_tail(), r.log_tail()))
        return False
    return True


def check_h3_healthz(c, e, r):
    st, hd, body, out = e.h3("/healthz")
    if not c.eq(st, 200, "gtlsclient (HTTP/3 over QUIC) GET /healthz through the edge -> 200"):
        sys.stderr.write(out[-3000:] + "\n")
    c.check("Negotiated ALPN is h3" in out, "gtlsclient negotiated ALPN h3 with Caddy over QUIC")
    c.eq(body, b'{"status":"ok"}', "the /healthz body arrives over HTTP/3")
    line = reeld_line(r, hd.get("x-request-id"))
    c.check(bool(line), "reeld logged that request (X-Request-Id %s)" % hd.get("x-request-id"))
    c.eq(line.get("protocol"), "HTTP/2", "reeld saw the Caddy -> reeld leg as HTTP/2")
    c.eq(line.get("scheme"), "https", "reeld logged scheme https")
    c.check(str(line.get("peer", "")).startswith("127.0.0.1:"),
            "reeld logged Caddy's socket as peer 127.0.0.1:PORT (got %r)" % line.get("peer"))
    c.eq(line.get("remote"), "::1", "reeld logged the HTTP/3 client (::1, from X-Forwarded-For) as remote")
    # Caddy's own active health checks carry no X-Forwarded-For and no id we saw
    probes = h.wait_for(lambda: [d for d in reeld_requests(r)
                                 if d.get("path") == "/healthz" and d.get("protocol") == "HTTP/2"
                                 and "peer" not in d and d.get("request_id") not in e.request_ids], 5)
    c.check(bool(probes), "Caddy's active health check GET /healthz reached reeld over HTTP/2")


def check_h3_job(c, e, r, copies):
    st, hd, body, out = e.h3("/v1/jobs", method="POST", data=json.dumps({"prompt": "edge over h3"}).encode(),
                             auth=True)
    job = h3_json(body) or {}
    if not c.eq(st, 202, "POST /v1/jobs over HTTP/3 through the edge (token, JSON) -> 202"):
        sys.stderr.write(out[-3000:] + "\n")
        return
    c.eq(e.edge_proto("POST", "/v1/jobs", 202), "HTTP/3.0", "the edge's access log has that POST as HTTP/3.0")
    line = reeld_line(r, hd.get("x-request-id"))
    c.check(line.get("protocol") == "HTTP/2" and line.get("remote") == "::1"
            and str(line.get("peer", "")).startswith("127.0.0.1:"),
            "reeld got the POST over HTTP/2 from Caddy, client ::1 (%r)" % {k: line.get(k) for k in
                                                                            ("protocol", "remote", "peer")})
    jid = job.get("id", "")
    c.check(jid.startswith("job_"), "the 202 body names the job (%r)" % jid)

    st, _, _, _ = e.h3("/v1/jobs", method="POST", data=b'{"prompt": "no token"}')
    c.eq(st, 401, "POST /v1/jobs over HTTP/3 without the token -> 401")

    doc, st = {}, 0
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        st, _, body, _ = e.h3("/v1/jobs/" + jid, auth=True)
        doc = h3_json(body) or {}
        if st != 200 or doc.get("status") in h.TERMINAL_STATUSES:
            break
        time.sleep(0.2)
    c.eq(doc.get("status"), "finished", "the job polled over HTTP/3 reaches finished (last answer %d)" % st)
    c.eq(e.edge_proto("GET", "/v1/jobs/" + jid, 200), "HTTP/3.0", "the polls went over HTTP/3")

    st, _, body, _ = e.h3("/v1/jobs/%s/logs" % jid, auth=True)
    lines = (h3_json(body) or {}).get("lines", [])
    c.eq(st, 200, "GET /v1/jobs/{id}/logs over HTTP/3 -> 200")
    c.check(any(MARKER in str(x) for x in lines), "the job's log lines arrive over HTTP/3 (%r)" % lines[-3:])

    st, _, body, _ = e.h3("/v1/jobs/%s/artifact" % jid, auth=True)
    url = (h3_json(body) or {}).get("url", "")
    c.eq(st, 200, "GET /v1/jobs/{id}/artifact over HTTP/3 -> 200")
    c.check(url.startswith(e.base() + "/v1/files/"), "the signed URL points at the edge (%s)" % url.split("?")[0])
    parts = urllib.parse.urlsplit(url)
    local = parts.path + ("?" + parts.query if parts.query else "")
    with open(os.path.join(copies, "last.bin"), "rb") as f:
        data = f.read()

    # plain gtlsclient: the signed URL needs no header
    st, hd, got, out = e.h3(local)
    c.check(st == 200 and got == data, "the %d-byte artifact downloads whole over HTTP/3, byte for byte "
            "(%d, %d bytes)" % (len(data), st, len(got)))
    c.eq(e.edge_proto("GET", "/v1/files/", 200), "HTTP/3.0", "the edge logged the download as HTTP/3.0")

    st, hd, got = e.curl(e.base() + local, ["-r", "1000-40999"])
    c.eq(st, 206, "the artifact with Range through the edge (curl, HTTP/2) -> 206")
    c.eq(hd.get("content-range"), "bytes 1000-40999/%d" % len(data), "Content-Range through the edge")
    c.check(got == data[1000:41000], "the right 40000 bytes through the edge (got %d)" % len(got))

    st, _, _, _ = e.h3("/v1/jobs/%s/cancel" % jid, method="POST", auth=True)
    c.eq(st, 409, "cancel of the finished job over HTTP/3 -> 409")
    c.eq(e.edge_proto("POST", "/v1/jobs/%s/cancel" % jid, 409), "HTTP/3.0", "the cancel went over HTTP/3")


def check_alt_svc_and_forwarded(c, e, r):
    st, hd, body = e.curl(e.base() + "/healthz", ["-H", "X-Forwarded-For: 203.0.113.7"], interface="127.0.0.2")
    c.eq((st, hd.get("_version")), (200, "HTTP/2"), "curl --http2 from 127.0.0.2 to the edge's TCP port -> 200 over h2")
    c.check('h3=":%d"' % e.port in hd.get("alt-svc", ""),
            "the answer advertises HTTP/3 on the edge port (alt-svc: %r)" % hd.get("alt-svc"))
    line = reeld_line(r, hd.get("x-request-id"))
    c.eq(line.get("remote"), "127.0.0.2", "reeld logged the forwarded client 127.0.0.2 (not the forged 203.0.113.7)")
    c.check(str(line.get("peer", "")).startswith("127.0.0.1:") and line.get("scheme") == "https",
            "... with Caddy as peer and scheme https (%r, %r)" % (line.get("peer"), line.get("scheme")))


def check_sse_through_edge(c, e, r, copies):
    gate = os.path.join(copies, "gate")
    st, _, job = r.json("POST", "/v1/jobs", {"prompt": "edge gate"})
    jid = job.get("id", "") if isinstance(job, dict) else ""
    if not c.eq(st, 202, "a job that waits at a gate is accepted"):
        return
    cmd = ["curl", "-sS", "-N", "--noproxy", "*", "--http2", "--max-time", "40",
           "--cacert", os.path.join(e.certs, "ca.pem"), "--resolve", "localhost:%d:127.0.0.1" % e.port,
           "-H", "Authorization: Bearer " + h.TOKEN, e.base() + "/v1/jobs/%s/events" % jid]
    out_path = os.path.join(copies, "sse.txt")
    with open(out_path, "wb") as out:
        curl = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def text():
        with open(out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    early = h.wait_for(lambda: "event: job.progress" in text(), 20, 0.1)
    status = r.json("GET", "/v1/jobs/" + jid)[2].get("status")
    c.check(early and "event: job.started" in text() and status in ("started", "progress"),
            "through the edge (curl --http2), job.started and job.progress arrive while the job still runs (%s)"
            % status)
    with open(gate, "w"):
        pass
    try:
        curl.wait(40)
    except subprocess.TimeoutExpired:
        curl.kill()
        curl.wait()
    got = [line[7:] for line in text().splitlines() if line.startswith("event: ")]
    c.check(got[:2] == ["job.created", "job.started"] and got[-1:] == ["job.finished"] and curl.returncode == 0,
            "the stream through the edge ends after job.finished (curl exit %s): %s" % (curl.returncode, got))
    os.unlink(gate)
    st, _, body, _ = e.h3("/v1/jobs/%s/events" % jid, auth=True)
    replayed = [line[7:] for line in body.decode("utf-8", "replace").splitlines() if line.startswith("event: ")]
    c.check(st == 200 and replayed == got, "the finished job's stream over HTTP/3 through the edge replays the "
            "same events and ends (%d): %s" % (st, replayed))
    c.eq(e.edge_proto("GET", "/v1/jobs/%s/events" % jid, 200), "HTTP/3.0", "the edge logged that stream as HTTP/3.0")


def check_edge_log(c, e):
    st, _, _ = e.curl(e.base() + "/metrics")
    c.eq(st, 404, "/metrics is not served at the edge")
    st, _, _ = e.curl(e.base() + "/readyz")
    c.eq(st, 200, "GET /readyz through the edge -> 200")
    entries = e.access_entries()
    uris = [x.get("request", {}).get("uri", "") for x in entries]
    c.check(entries and not any(u.startswith(("/healthz", "/readyz")) for u in uris),
            "the edge's access log has no /healthz or /readyz lines (%d lines)" % len(entries))
    with open(e.access_log, encoding="utf-8") as f:
        text = f.read()
    c.check(h.TOKEN not in text, "the bearer token is not in the edge's access log")
    files = [u for u in uris if u.startswith("/v1/files/")]
    c.check(files and all("signature=REDACTED" in u for u in files),
            "download signatures are masked in the edge's access log (%r)" % [u[-40:] for u in files])


def body(c):
    missing = [(tool, pkg) for tool, pkg in (("caddy", "caddy"), ("gtlsclient", "ngtcp2-client"),
                                              ("curl", "curl"), ("cc", "gcc"), ("certtool", "gnutls-bin"))
               if not shutil.which(tool)]
    for tool, pkg in missing:
        c.fail("%s is needed and not installed (apt-get install %s; scripts/install-deps.sh --test)" % (tool, pkg))
    if missing:
        return
    if not os.path.isfile(CADDYFILE):
        c.fail("%s is missing" % CADDYFILE)
        return
    if not has_ipv6_loopback():
        c.fail("the test needs IPv6 loopback (::1): the HTTP/3 client connects from ::1 so that reeld "
               "can tell the forwarded client from Caddy (127.0.0.1)")
        return
    tmp = tempfile.mkdtemp(prefix="reel-edge-")
    keep = False
    e = None
    try:
        e = Edge(tmp)
        out = subprocess.run(["bash", DEV_CERT, e.certs], capture_output=True, timeout=60)
        if not c.check(out.returncode == 0, "scripts/dev-cert.sh makes the dev CA and server certificate"
                       + failure_detail(out)):
            return
        try:
            e.h3client = H3Client(tmp)
        except H3ClientError as err:
            c.fail(str(err))
            return
        check_production_shape(c, e)

        copies = os.path.join(tmp, "copies")
        os.makedirs(copies)
        script = h.write_script(copies, "job.sh", """
            set -e
            echo %s
            echo "REEL_PROGRESS 20 plan"
            case "$1" in *gate*) while [ ! -e %s/gate ]; do sleep 0.05; done;; esac
            echo "REEL_PROGRESS 80 clips"
            mkdir -p output
            head -c %d /dev/urandom > output/final_video.mp4
            cp output/final_video.mp4 %s/last.bin
        """ % (MARKER, copies, SIZE, copies))
        with h.Reeld(service={"workers": 1,
                              "tls": {"cert_file": os.path.join(e.certs, "server.pem"),
                                      "key_file": os.path.join(e.certs, "server-key.pem")},
                              "trusted_proxies": ["127.0.0.1"],
                              "public_base_url": e.base()},
                     pipeline={"default_backend": "command", "command": [script, "{prompt}"]}, start=False) as r:
            r.config["service"]["listen"] = ["http://127.0.0.1:%d" % r.port,
                                             "https://127.0.0.1:%d" % e.reeld_tls_port]
            r.start()
            try:
                if start_edge(c, e, r):
                    check_h3_healthz(c, e, r)
                    check_h3_job(c, e, r, copies)
                    check_alt_svc_and_forwarded(c, e, r)
                    check_sse_through_edge(c, e, r, copies)
                    check_edge_log(c, e)
            finally:
                pid = e.caddy.pid if e.caddy else None
                code = e.stop_caddy()
                if pid is not None:
                    c.eq(code, 0, "Caddy exits 0 on SIGTERM")
                    c.check(not h.pid_alive(pid), "no caddy process is left (pid %d)" % pid)
            if c.failed:
                sys.stderr.write("caddy log tail:\n%s\n" % e.caddy_tail())
    except BaseException:
        keep = True
        raise
    finally:
        if e is not None and e.caddy_alive():
            e.caddy.kill()
            e.caddy.wait()
        if keep or os.environ.get("REEL_KEEP_TMP") == "1":
            sys.stderr.write("test_edge_caddy: kept %s\n" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
