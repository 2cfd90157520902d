"""The same job lifecycle over every protocol reeld speaks, with real clients.

One reeld listens on http:// (HTTP/1.1 + h2c), https:// (TLS, ALPN h2 and
http/1.1) and h3:// (QUIC), with a development CA made by
scripts/dev-cert.sh. For each client below the test creates a job, polls it
to finished, reads its logs, downloads the artifact whole and with a Range
(206 and the right bytes), creates a slow job and cancels it (-> canceled),
and checks reeld's access log names the protocol of every request it made:

    curl --http1.1 over https://      HTTP/1.1 + TLS
    curl --http2 over https://        HTTP/2 + TLS (ALPN h2)
    nghttp over https://              HTTP/2 + TLS
    nghttp over http://               h2c (prior knowledge)
    HTTP/3: gtlsclient (Debian ngtcp2-client) for what needs no request
            headers (health, signed artifact download), and Caddy's HTTP/3
            transport (quic-go) as the client for the authenticated calls:
            curl --http1.1 -> Caddy -> reeld over HTTP/3.

Also: Alt-Svc h3=":PORT" on every TCP response (HTTP/1.1, h2, h2c); TLS 1.1
refused with a protocol_version alert; SIGHUP swaps the certificate for new
connections while a download in flight on the old one completes; a bad
certificate on SIGHUP keeps the old one; TLS robustness (garbage instead of
a ClientHello, a stalled handshake, oversized headers over h1 and h2, a
flood of h2 streams) each get the protocol's error while other clients are
served.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402
from h3client import H3Client, H3ClientError  # noqa: E402

SIZE = 300000
SIGNING_KEY = "protocols-signing-key-0123456789abcdef"


class Env:
    """Everything the clients need: ports, the CA, a scratch directory."""

    def __init__(self, r, tmp, certs, tls_port, h3_port, copies):
        self.r = r
        self.tmp = tmp
        self.certs = certs
        self.ca = os.path.join(certs, "ca.pem")
        self.tls_port = tls_port
        self.h3_port = h3_port
        self.copies = copies
        self.n = 0

    def scratch(self, name):
        self.n += 1
        return os.path.join(self.tmp, "%d-%s" % (self.n, name))


# ------------------------------------------------------------------ clients --
# Each client is call(env, method, path, body=None, headers=None, token=True)
# -> (status, {lowercase header: value}, body bytes); status 0 when the
# client failed (its stderr is kept in .last_error for messages).

def parse_header_dump(text):
    """The last response head in a curl -D dump."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    status, hdrs = 0, {}
    for block in blocks:
        lines = block.splitlines()
        if not lines or not lines[0].startswith("HTTP/"):
            continue
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
    return status, hdrs


class Curl:
    def __init__(self, version, scheme):
        self.version = version  # "--http1.1" | "--http2"
        self.scheme = scheme
        self.name = "curl %s over %s://" % (version, scheme)
        self.protocol = "HTTP/1.1" if version == "--http1.1" else "HTTP/2"
        self.last_error = ""

    def base(self, env):
        port = env.tls_port if self.scheme == "https" else env.r.port
        return "%s://localhost:%d" % (self.scheme, port)

    def call(self, env, method, path, body=None, headers=None, token=True):
        head = env.scratch("head")
        out = env.scratch("body")
        cmd = ["curl", "-sS", self.version, "--cacert", env.ca, "-X", method, "-D", head, "-o", out,
               "--max-time", "20"]
        if token:
            cmd += ["-H", "Authorization: Bearer " + h.TOKEN]
        for k, v in (headers or {}).items():
            cmd += ["-H", "%s: %s" % (k, v)]
        if body is not None:
            path_body = env.scratch("req")
            with open(path_body, "wb") as f:
                f.write(body)
            cmd += ["--data-binary", "@" + path_body, "-H", "Content-Type: application/json"]
        cmd.append(self.base(env) + path)
        p = subprocess.run(cmd, capture_output=True, timeout=30)
        self.last_error = p.stderr.decode("utf-8", "replace")[-300:]
        if p.returncode != 0:
            return 0, {}, b""
        with open(head, encoding="latin-1") as f:
            status, hdrs = parse_header_dump(f.read())
        with open(out, "rb") as f:
            return status, hdrs, f.read()


class Nghttp:
    def __init__(self, scheme):
        self.scheme = scheme
        self.name = "nghttp over %s://" % scheme + (" (h2c)" if scheme == "http" else " (h2)")
        self.protocol = "HTTP/2"
        self.last_error = ""

    def call(self, env, method, path, body=None, headers=None, token=True):
        har = env.scratch("har")
        port = env.tls_port if self.scheme == "https" else env.r.port
        # nghttp does not verify certificates; the curl clients do
        cmd = ["nghttp", "--har=" + har, "-t", "20", "-H", ":method: " + method]
        if token:
            cmd += ["-H", "authorization: Bearer " + h.TOKEN]
        for k, v in (headers or {}).items():
            cmd += ["-H", "%s: %s" % (k.lower(), v)]
        if body is not None:
            path_body = env.scratch("req")
            with open(path_body, "wb") as f:
                f.write(body)
            cmd += ["-d", path_body, "-H", "content-type: application/json"]
        cmd.append("%s://localhost:%d%s" % (self.scheme, port, path))
        p = subprocess.run(cmd, capture_output=True, timeout=30)
        self.last_error = p.stderr.decode("utf-8", "replace")[-300:]
        try:
            with open(har, encoding="utf-8") as f:
                entry = json.load(f)["log"]["entries"][0]
        except (OSError, ValueError, KeyError, IndexError):
            return 0, {}, b""
        hdrs = {x["name"].lower(): x["value"] for x in entry["response"]["headers"]}
        return int(entry["response"]["status"]), hdrs, p.stdout


class Gtlsclient:
    """HTTP/3 to reeld's h3:// listener with gtlsclient (headers added by h3client's library)."""

    def __init__(self, client):
        self.client = client
        self.name = "gtlsclient over h3://"
        self.protocol = "HTTP/3"
        self.last_error = ""

    def call(self, env, method, path, body=None, headers=None, token=True):
        extra = {k.lower(): v for k, v in (headers or {}).items()}
        if token:
            extra["authorization"] = "Bearer " + h.TOKEN
        if body is not None:
            extra["content-type"] = "application/json"
        st, hd, got, text = self.client.request("127.0.0.1", env.h3_port, "https://localhost:%d%s"
                                                % (env.h3_port, path), method=method, data=body, headers=extra)
        self.last_error = text[-300:]
        return st, hd, got


# ---------------------------------------------------------------- lifecycle --

def request_ids(env, protocol):
    """request_ids of access-log lines with this protocol."""
    ids = set()
    for line in env.r.log_text().splitlines():
        if '"msg":"request"' in line and '"protocol":"%s"' % protocol in line:
            try:
                ids.add(json.loads(line)["request_id"])
            except (ValueError, KeyError):
                pass
    return ids


def lifecycle(c, env, client, alt_svc=True):
    name = client.name
    seen_ids = []

    def call(method, path, body=None, headers=None, token=True):
        st, hd, got = client.call(env, method, path, body=body, headers=headers, token=token)
        if st == 0:
            c.fail("%s: %s %s failed: %s" % (name, method, path, client.last_error))
        if hd.get("x-request-id"):
            seen_ids.append(hd["x-request-id"])
        return st, hd, got

    st, hd, got = call("POST", "/v1/jobs", body=json.dumps({"prompt": "fast lifecycle"}).encode())
    c.eq(st, 202, "%s: POST /v1/jobs -> 202" % name)
    if alt_svc:
        c.eq(hd.get("alt-svc"), 'h3=":%d"; ma=86400' % env.h3_port, "%s: Alt-Svc names the QUIC listener" % name)
    try:
        jid = json.loads(got)["id"]
    except (ValueError, KeyError):
        c.fail("%s: POST /v1/jobs body is a job (got %r)" % (name, got[:200]))
        return
    st, _, _ = call("POST", "/v1/jobs", body=b'{"prompt": "x"}', token=False)
    c.eq(st, 401, "%s: POST /v1/jobs without a token -> 401" % name)

    doc = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st, _, got = call("GET", "/v1/jobs/" + jid)
        try:
            doc = json.loads(got)
        except ValueError:
            doc = {}
        if st != 200 or doc.get("status") in h.TERMINAL_STATUSES:
            break
        time.sleep(0.1)
    c.eq(doc.get("status"), "finished", "%s: the job polled to finished" % name)

    st, _, got = call("GET", "/v1/jobs/%s/logs" % jid)
    c.eq(st, 200, "%s: GET logs -> 200" % name)
    c.check(b"protocols-marker" in got, "%s: the job's log line arrives" % name)

    st, _, got = call("GET", "/v1/jobs/%s/artifact" % jid)
    c.eq(st, 200, "%s: GET artifact -> 200" % name)
    try:
        url = urllib.parse.urlsplit(json.loads(got)["url"])
    except (ValueError, KeyError):
        c.fail("%s: the artifact answer has a url (got %r)" % (name, got[:200]))
        return
    with open(os.path.join(env.copies, jid + ".bin"), "rb") as f:
        data = f.read()
    local = url.path + "?" + url.query
    st, _, got = call("GET", local, token=False)
    c.check(st == 200 and got == data, "%s: the artifact downloads whole (%d, %d of %d bytes)"
            % (name, st, len(got), len(data)))
    st, hd, got = call("GET", local, token=False, headers={"Range": "bytes=1000-200999"})
    c.eq(st, 206, "%s: the artifact with Range -> 206" % name)
    c.eq(hd.get("content-range"), "bytes 1000-200999/%d" % SIZE, "%s: Content-Range" % name)
    c.check(got == data[1000:201000], "%s: the right 200000 bytes of the range (got %d)" % (name, len(got)))

    st, _, got = call("POST", "/v1/jobs", body=json.dumps({"prompt": "slow lifecycle"}).encode())
    try:
        slow = json.loads(got)["id"]
    except (ValueError, KeyError):
        c.fail("%s: the slow job was created (got %d %r)" % (name, st, got[:200]))
        return
    running = h.wait_for(lambda: env.r.json("GET", "/v1/jobs/" + slow)[2].get("status") in ("started", "progress"), 20)
    c.check(bool(running), "%s: the slow job starts" % name)
    st, _, got = call("POST", "/v1/jobs/%s/cancel" % slow)
    c.eq(st, 200, "%s: POST cancel of a running job -> 200" % name)
    final = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st, _, got = call("GET", "/v1/jobs/" + slow)
        try:
            final = json.loads(got)
        except ValueError:
            final = {}
        if final.get("status") in h.TERMINAL_STATUSES:
            break
        time.sleep(0.1)
    c.eq(final.get("status"), "canceled", "%s: the cancelled job ends canceled" % name)
    st, _, _ = call("POST", "/v1/jobs/%s/cancel" % jid)
    c.eq(st, 409, "%s: cancel of a finished job -> 409" % name)

    logged = h.wait_for(lambda: set(seen_ids) <= request_ids(env, client.protocol), 5)
    c.check(bool(seen_ids) and bool(logged), "%s: the access log names %s for all %d requests"
            % (name, client.protocol, len(seen_ids)))


# ---------------------------------------------------------------- HTTP/3 ----

def check_h3(c, env, h3):
    """HTTP/3 specifics: many requests on one connection, the stalled and
    garbage handshakes, Retry."""
    urls = ["https://localhost:%d/healthz" % env.h3_port] * 20
    p = subprocess.run(["gtlsclient", "--exit-on-all-streams-close", "--no-quic-dump", "--no-http-dump",
                        "127.0.0.1", str(env.h3_port)] + urls, capture_output=True, timeout=60)
    text = (p.stdout + p.stderr).decode("utf-8", "replace")
    c.eq(text.count(":status: 200]"), 20, "20 requests on one QUIC connection all get 200")
    c.check("type=Retry" in text, "the server validates the client's address with a Retry packet first")
    # more requests than quic.max_streams (100) on one connection: streams wait for credit, none fail
    p = subprocess.run(["gtlsclient", "--exit-on-all-streams-close", "--no-quic-dump", "--no-http-dump",
                        "-n", "400", "127.0.0.1", str(env.h3_port), "https://localhost:%d/healthz" % env.h3_port],
                       capture_output=True, timeout=120)
    text = (p.stdout + p.stderr).decode("utf-8", "replace")
    c.eq(text.count(":status: 200]"), 400, "400 requests on one QUIC connection (4x quic.max_streams) all get 200")

    # garbage datagrams and a stalled handshake (client loses every packet the server sends)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        for n in range(200):
            u.sendto(bytes([0xc0 | (n & 0x3f)]) + b"\x00\x00\x00\x01" + os.urandom(1195),
                     ("127.0.0.1", env.h3_port))
            u.sendto(os.urandom(50), ("127.0.0.1", env.h3_port))
    stalled = subprocess.Popen(["gtlsclient", "--rx-loss=1.0", "--no-quic-dump", "--no-http-dump",
                                "--handshake-timeout=30s", "127.0.0.1", str(env.h3_port),
                                "https://localhost:%d/healthz" % env.h3_port],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        st, _, got = h3.call(env, "GET", "/healthz", token=False)
        c.check(st == 200 and b"ok" in got, "HTTP/3 still served during garbage datagrams and a stalled handshake")
    finally:
        stalled.kill()
        stalled.wait()
    st, _, _ = env.r.request("GET", "/healthz", token=False)
    c.eq(st, 200, "TCP still served after the QUIC robustness cases")

    big = "x" * 20000
    st, _, _ = h3.call(env, "GET", "/healthz", headers={"x-big": big}, token=False)
    c.eq(st, 431, "a 20 KB header section over HTTP/3 -> 431")
    st, hd, _ = h3.call(env, "POST", "/v1/jobs", body=b'{"prompt": "' + b"x" * 70000 + b'"}')
    c.eq(st, 413, "a body over service.max_body_bytes over HTTP/3 -> 413")


# ------------------------------------------------------------------- TLS ----

def leaf_pem(path):
    with open(path) as f:
        text = f.read()
    end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return text[:end].strip()


def served_cert(env):
    ctx = ssl.create_default_context(cafile=env.ca)
    with socket.create_connection(("127.0.0.1", env.tls_port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return ssl.DER_cert_to_PEM_cert(t.getpeercert(binary_form=True)).strip()


def check_tls_versions(c, env):
    p = subprocess.run(["gnutls-cli", "--x509cafile", env.ca, "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.1",
                        "-p", str(env.tls_port), "localhost"], input=b"", capture_output=True, timeout=20)
    text = (p.stdout + p.stderr).decode("utf-8", "replace")
    c.check(p.returncode != 0 and "protocol version" in text.lower(),
            "TLS 1.1 is refused with a protocol_version alert (%s)" % text.strip().splitlines()[-1:])
    ctx = ssl.create_default_context(cafile=env.ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", env.tls_port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            c.eq(t.version(), "TLSv1.2", "TLS 1.2 is accepted")
            c.eq(t.selected_alpn_protocol(), "h2", "ALPN prefers h2")
            c.check("GCM" in t.cipher()[0] or "CHACHA20" in t.cipher()[0],
                    "TLS 1.2 uses an AEAD cipher (%s)" % t.cipher()[0])


def check_reload(c, env):
    """SIGHUP: new connections get the new certificate; a response in flight finishes."""
    before = served_cert(env)
    c.eq(before, leaf_pem(os.path.join(env.certs, "server.pem")), "the configured certificate is served")
    # a download in flight over TLS: read the head and a little of the body, then reload
    st, _, got = env.r.json("GET", "/v1/jobs?status=finished&limit=1")
    jid = got["jobs"][0]["id"] if got and got.get("jobs") else ""
    _, _, art = env.r.json("GET", "/v1/jobs/%s/artifact" % jid)
    url = urllib.parse.urlsplit(art["url"]) if art else urllib.parse.urlsplit("")
    ctx = ssl.create_default_context(cafile=env.ca)
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", env.tls_port), timeout=10)
    t = ctx.wrap_socket(raw, server_hostname="localhost")
    t.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    t.sendall(("GET %s?%s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
               % (url.path, url.query)).encode())
    first = t.recv(2048)
    c.check(first.startswith(b"HTTP/1.1 200"), "a download starts on the old certificate")

    subprocess.run(["bash", os.path.join(h.SOURCE_DIR, "scripts", "dev-cert.sh"), env.certs],
                   capture_output=True, check=True, timeout=60)
    env.r.proc.send_signal(signal.SIGHUP)
    reloaded = h.wait_for(lambda: "TLS certificate reloaded" in env.r.log_text(), 10)
    c.check(bool(reloaded), "SIGHUP logs 'TLS certificate reloaded'")
    after = served_cert(env)
    c.check(after != before and after == leaf_pem(os.path.join(env.certs, "server.pem")),
            "after SIGHUP a new connection gets the new certificate")

    rest = first
    while True:
        chunk = t.recv(65536)
        if not chunk:
            break
        rest += chunk
    t.close()
    body = rest.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in rest else b""
    with open(os.path.join(env.copies, jid + ".bin"), "rb") as f:
        data = f.read()
    c.check(body == data, "the download in flight across the reload completes (%d of %d bytes)"
            % (len(body), len(data)))

    # a broken certificate: the reload fails, the working one stays
    with open(os.path.join(env.certs, "server.pem"), "w") as f:
        f.write("not a certificate\n")
    env.r.proc.send_signal(signal.SIGHUP)
    failed = h.wait_for(lambda: "TLS reload failed" in env.r.log_text(), 10)
    c.check(bool(failed), "SIGHUP with a broken certificate logs 'TLS reload failed'")
    c.eq(served_cert(env), after, "the previous certificate stays in use")


# ------------------------------------------------------------ robustness ----

def h2_frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_get(path):
    # :method GET (2), :scheme https (7), :path literal (name index 4), :authority literal (index 1)
    return (b"\x82\x87" + b"\x04" + bytes([len(path)]) + path.encode()
            + b"\x01" + bytes([9]) + b"localhost")


def tls_socket(env, alpn):
    ctx = ssl.create_default_context(cafile=env.ca)
    ctx.set_alpn_protocols([alpn])
    s = socket.create_connection(("127.0.0.1", env.tls_port), timeout=10)
    return ctx.wrap_socket(s, server_hostname="localhost")


def served(env):
    st, _, _ = env.r.request("GET", "/healthz", token=False)
    return st == 200


def check_robustness(c, env):
    # garbage instead of a ClientHello
    with socket.create_connection(("127.0.0.1", env.tls_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4)
        s.settimeout(5)
        try:
            got = s.recv(100)
        except OSError:
            got = b""
        c.check(got[:1] in (b"", b"\x15"), "plain HTTP on the TLS port -> an alert or a close (got %r)" % got[:8])
    c.check(served(env), "another client is served after the garbage")

    # a stalled handshake: half a ClientHello, then silence past header_timeout (1 s)
    stalled = socket.create_connection(("127.0.0.1", env.tls_port), timeout=10)
    stalled.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    c.check(served(env), "a client is served while a handshake stalls")
    stalled.settimeout(10)
    try:
        got = stalled.recv(100)
    except OSError:
        got = b""
    stalled.close()
    c.eq(got, b"", "the stalled handshake is closed after service.header_timeout_seconds")
    c.check('"msg":"TLS handshake timeout"' in env.r.log_text(), "the stalled handshake is logged")

    # oversized headers: 431 over HTTP/1.1+TLS and over h2
    big = "x" * 20000
    st, _, _ = Curl("--http1.1", "https").call(env, "GET", "/healthz", headers={"X-Big": big}, token=False)
    c.eq(st, 431, "a 20 KB header over HTTP/1.1+TLS -> 431")
    t = tls_socket(env, "h2")
    t.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0, b""))
    block = hpack_get("/healthz") + b"\x40\x05x-big" + b"\x7f" + _hpack_int(len(big) - 127) + big.encode()
    t.sendall(h2_frame(1, 0x5, 1, block))
    got = _read_until_closed_or(t, 3)
    c.eq(_h2_status(got), "GOAWAY", "a 20 KB HEADERS frame (over the 16 KB frame size) over h2 -> GOAWAY")
    t.close()
    st, _, _ = Nghttp("https").call(env, "GET", "/healthz", headers={"x-big": big}, token=False)
    c.eq(st, 431, "a 20 KB header list over h2 (in CONTINUATION frames, nghttp) -> 431")
    c.check(served(env), "served after the oversized headers")

    # a flood of streams: 1000 HEADERS at once on one connection
    t = tls_socket(env, "h2")
    frames = [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", h2_frame(4, 0, 0, b"")]
    for i in range(1000):
        frames.append(h2_frame(1, 0x5, 1 + 2 * i, hpack_get("/healthz")))
    try:
        t.sendall(b"".join(frames))
    except OSError:
        pass
    got = _read_until_closed_or(t, 5)
    t.close()
    c.check(len(got) > 0, "the stream flood is answered (responses, RST_STREAM or GOAWAY: %d bytes)" % len(got))
    c.check(served(env), "another client is served during and after the stream flood")
    c.check(env.r.running(), "reeld survives the robustness cases")


def _hpack_int(n):
    out = b""
    while n >= 128:
        out += bytes([(n % 128) + 128])
        n //= 128
    return out + bytes([n])


def _read_until_closed_or(t, seconds):
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = t.recv(65536)
        except (socket.timeout, ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _h2_status(data):
    """'431' if a HEADERS frame's first field is :status 431 (static index 0x8d... not present: literal),
    'GOAWAY' if a GOAWAY arrived, else the frame types seen."""
    pos, kinds = 0, []
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        kind = data[pos + 3]
        payload = data[pos + 9:pos + 9 + length]
        kinds.append(kind)
        if kind == 1 and b"431" in payload:
            return "431"
        pos += 9 + length
    return "GOAWAY" if 7 in kinds else repr(kinds)


def check_key_mismatch(c, env):
    """A key that does not belong to the certificate is refused at start with
    a message naming both files (reeld checks the pair by public-key ID, since
    it skips GnuTLS's sign-and-verify check to keep start-up light)."""
    # two fresh pairs (check_reload left env.certs holding a broken certificate)
    mine, other = os.path.join(env.tmp, "mine-certs"), os.path.join(env.tmp, "other-certs")
    for d in (mine, other):
        subprocess.run(["bash", os.path.join(h.SOURCE_DIR, "scripts", "dev-cert.sh"), d],
                       capture_output=True, check=True, timeout=60)
    port = h.free_port()
    r = h.Reeld(service={"tls": {"cert_file": os.path.join(mine, "server.pem"),
                                 "key_file": os.path.join(other, "server-key.pem")}}, start=False)
    try:
        r.config["service"]["listen"] = ["127.0.0.1:%d" % r.port, "https://127.0.0.1:%d" % port]
        try:
            r.start(timeout=10)
            c.fail("reeld started with a TLS key that does not belong to its certificate")
        except h.ReeldError:
            log = r.log_text()
            c.check("other-certs/server-key.pem" in log and "mine-certs/server.pem" in log,
                    "a mismatched TLS key is refused at start, naming the files: %s"
                    % log.splitlines()[-2:])
        # the matching pair from the same second directory starts
        r.config["service"]["tls"]["key_file"] = os.path.join(mine, "server-key.pem")
        r.start(timeout=20)
        c.check(r.running(), "the matching pair starts")
    finally:
        r.close()


def check_shutdown(c, env):
    """SIGTERM with an HTTP/3 connection open: it gets CONNECTION_CLOSE, reeld exits 0."""
    idle = subprocess.Popen(["gtlsclient", "--delay-stream=20s", "--timeout=30s", "127.0.0.1", str(env.h3_port),
                             "https://localhost:%d/healthz" % env.h3_port],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1)  # let the handshake finish (the stream waits 20 s)
    code = env.r.stop(timeout=15)
    c.eq(code, 0, "reeld exits 0 on SIGTERM with an HTTP/3 connection open")
    try:
        out, _ = idle.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        idle.kill()
        out, _ = idle.communicate()
    text = out.decode("utf-8", "replace")
    c.check(re.search(r"frm rx \d+ \w+ CONNECTION_CLOSE", text) is not None,
            "the open QUIC connection receives CONNECTION_CLOSE on shutdown")


# --------------------------------------------------------------------- main --

def body(c):
    for tool in ("curl", "nghttp", "gnutls-cli", "certtool"):
        if not shutil.which(tool):
            c.fail("%s is needed (scripts/install-deps.sh --test)" % tool)
            return
    tmp = tempfile.mkdtemp(prefix="reel-protocols-")
    copies = tempfile.mkdtemp(prefix="reel-protocols-copies-")
    certs = os.path.join(tmp, "certs")
    subprocess.run(["bash", os.path.join(h.SOURCE_DIR, "scripts", "dev-cert.sh"), certs],
                   capture_output=True, check=True, timeout=60)
    script = h.write_script(copies, "job.sh", """
        set -e
        echo protocols-marker
        if grep -q slow "$1"; then sleep 60; fi
        mkdir -p output
        head -c %d /dev/urandom > output/final_video.mp4
        cp output/final_video.mp4 %s/"$(basename "$PWD")".bin
    """ % (SIZE, copies))
    tls_port = h.free_port()
    h3_port = tls_port  # QUIC is UDP: the same number as the TCP TLS port, like a real edge
    try:
        with h.Reeld(service={
                "workers": 2, "signing_key": SIGNING_KEY, "header_timeout_seconds": 1,
                "cancel_grace_seconds": 1,
                "tls": {"cert_file": os.path.join(certs, "server.pem"),
                        "key_file": os.path.join(certs, "server-key.pem")}},
                pipeline={"default_backend": "command", "command": [script, "{config}"]}) as r:
            r.config["service"]["listen"] = ["127.0.0.1:%d" % r.port, "https://127.0.0.1:%d" % tls_port,
                                             "h3://127.0.0.1:%d" % h3_port]
            r.stop()
            r.start()
            env = Env(r, tmp, certs, tls_port, h3_port, copies)
            for client in (Curl("--http1.1", "https"), Curl("--http2", "https"), Nghttp("https"),
                           Nghttp("http")):
                lifecycle(c, env, client)
            try:
                h3 = Gtlsclient(H3Client(tmp))
            except H3ClientError as err:
                c.fail(str(err))
            else:
                lifecycle(c, env, h3, alt_svc=False)
                check_h3(c, env, h3)
            check_tls_versions(c, env)
            check_robustness(c, env)
            check_reload(c, env)
            check_key_mismatch(c, env)
            check_shutdown(c, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(copies, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
