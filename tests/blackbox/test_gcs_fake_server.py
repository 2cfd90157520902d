"""GCS delivery against a FAKE Google Cloud Storage XML-API server written in
Python, in this file (FakeGCS below). No real GCS can be reached from tests,
and no GCS emulator that checks V4 signatures is packaged for Debian or npm,
so the fake does what matters to reel and nothing else:

  * it verifies every signed request's GOOG4-RSA-SHA256 signature with the
    public half of the key in tests/vectors/gcs-v4/service-account.json (the
    conformance suite's inactive dummy key), by rebuilding the canonical
    request from what it received (method, path, the query without
    X-Goog-Signature, the signed headers with "host" taken from the Host
    header without its port, UNSIGNED-PAYLOAD), and answers 403 with GCS's
    error codes on a mismatch (SignatureDoesNotMatch), an expired or future
    URL (ExpiredToken / RequestNotValidYet) or a foreign credential;
  * it stores objects in memory: signed PUT, signed resumable POST
    (x-goog-resumable: start -> 201 with a session URI in Location, which
    carries the signed query plus upload_id, as GCS's does) then PUT chunks
    with Content-Range (308 Resume Incomplete with Range until the last one,
    status queries with "bytes */SIZE", non-final chunks must be multiples of
    256 KiB), GET of an object, GET of a bucket (listing); session requests
    are authorised by their unguessable upload_id, as on GCS;
  * it can refuse a bucket (403 AccessDenied), not know one (404
    NoSuchBucket), allow anonymous reads (a public bucket), and inject 503s:
    on whole-object PUTs, or on chunks after keeping their first 256 KiB.

Scenarios: single-PUT and resumable uploads finish with gcs_uri =
gs://BUCKET/reel/YYYY-MM/ID/final_video.mp4 and the stored bytes are the
pipeline's; /artifact's signed URL downloads them from the fake while a
tampered, an expired or an unsigned one is refused; signed_urls: false gives
the public URL with expires_in 0; 503s are retried (and an interrupted chunk
is resumed after a status query); a permanent 403 fails the job at once with
GCS's error code and keeps the video under failed-uploads/; /readyz is 503
for a missing, refused or unreachable bucket and for a wrong key. Needs
Debian's python3-cryptography (scripts/install-deps.sh --test)."""
import calendar
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import reelharness as h

BUCKET = "reel-test"
REFUSED_BUCKET = "reel-forbidden"  # exists, but the key may not write to it
KEY_PATH = os.path.join(h.SOURCE_DIR, "tests", "vectors", "gcs-v4", "service-account.json")
CHUNK_UNIT = 256 * 1024
MiB = 1024 * 1024


# ---------------------------------------------------------------- fake GCS --

def load_crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError as e:
        raise h.ReeldError("python3-cryptography is missing (%s): run scripts/install-deps.sh --test" % e)
    return InvalidSignature, hashes, serialization, padding, rsa


def gcs_quote(text, keep_slash=False):
    """V4 percent-encoding: everything but A-Za-z0-9-._~ (and "/" in paths)."""
    return urllib.parse.quote(text, safe="/-._~" if keep_slash else "-._~")


class FakeGCS(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, key_path):
        InvalidSignature, hashes, serialization, padding, _ = load_crypto()
        self.InvalidSignature, self.hashes, self.padding = InvalidSignature, hashes, padding
        with open(key_path, encoding="utf-8") as f:
            account = json.load(f)
        self.email = account["client_email"]
        self.public_key = serialization.load_pem_private_key(
            account["private_key"].encode(), password=None).public_key()
        self.lock = threading.Lock()
        self.buckets = {BUCKET, REFUSED_BUCKET}
        self.refused = {REFUSED_BUCKET}
        self.public_read = False
        self.objects = {}       # (bucket, key) -> (bytes, content type)
        self.sessions = {}      # upload_id -> dict(bucket, key, type, data)
        self.fail_puts = 0      # answer 503 to this many whole-object PUTs
        self.fail_chunks = 0    # answer 503 to this many chunks, after keeping their first 256 KiB
        self.failed = 0         # 503s answered
        self.verified = 0       # signatures that checked out
        self.refusals = []      # (status, code) of every refusal
        self.chunks = []        # (start, length) of every chunk received
        self.status_queries = 0
        super().__init__(("127.0.0.1", 0), FakeGCSHandler)
        self.port = self.server_address[1]
        self.endpoint = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


class Refusal(Exception):
    def __init__(self, status, code, message=""):
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


class FakeGCSHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    # -- answers --

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message=""):
        xml = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code><Message>%s</Message></Error>"
               % (code, message)).encode()
        self.answer(status, xml, [("Content-Type", "application/xml; charset=UTF-8")])

    # -- the V4 signature, rebuilt from the request as received --

    def verify(self, path, raw_query):
        server = self.server
        pairs = []
        for item in raw_query.split("&") if raw_query else []:
            name, _, value = item.partition("=")
            pairs.append((urllib.parse.unquote(name), urllib.parse.unquote(value)))
        params = dict(pairs)
        needed = ["X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-Date", "X-Goog-Expires", "X-Goog-SignedHeaders",
                  "X-Goog-Signature"]
        if not all(n in params for n in needed):
            raise Refusal(403, "AccessDenied", "Anonymous caller does not have access.")
        if params["X-Goog-Algorithm"] != "GOOG4-RSA-SHA256":
            raise Refusal(400, "InvalidArgument", "unsupported algorithm")
        date = params["X-Goog-Date"]
        email, _, scope = params["X-Goog-Credential"].partition("/")
        if email != server.email or scope != "%s/auto/storage/goog4_request" % date[:8]:
            raise Refusal(403, "InvalidCredential", "unknown credential or scope")
        signed_at = calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ"))
        expires = int(params["X-Goog-Expires"])
        now = time.time()
        if not 1 <= expires <= 604800:
            raise Refusal(400, "InvalidArgument", "bad X-Goog-Expires")
        if now < signed_at - 900:
            raise Refusal(403, "RequestNotValidYet", "the URL is not valid yet")
        if now > signed_at + expires:
            raise Refusal(403, "ExpiredToken", "the URL has expired")
        signed = params["X-Goog-SignedHeaders"].split(";")
        if "host" not in signed or signed != sorted(signed):
            raise Refusal(403, "SignatureDoesNotMatch", "host must be signed, names sorted")
        lines = []
        for name in signed:
            if name == "host":
                value = re.sub(r":\d+$", "", self.headers.get("Host", ""))
            else:
                values = self.headers.get_all(name) or []
                value = ",".join(re.sub(r"[ \t]+", " ", v.strip(" \t")) for v in values)
            lines.append("%s:%s\n" % (name, value))
        payload = self.headers.get("x-goog-content-sha256") if "x-goog-content-sha256" in signed else None
        query = "&".join("%s=%s" % (gcs_quote(n), gcs_quote(v))
                         for n, v in sorted(pairs) if n != "X-Goog-Signature")
        canonical = "\n".join([self.command, gcs_quote(urllib.parse.unquote(path), keep_slash=True), query,
                               "".join(lines), ";".join(signed), payload or "UNSIGNED-PAYLOAD"])
        to_sign = "GOOG4-RSA-SHA256\n%s\n%s\n%s" % (date, scope, hashlib.sha256(canonical.encode()).hexdigest())
        try:
            signature = bytes.fromhex(params["X-Goog-Signature"])
            server.public_key.verify(signature, to_sign.encode(), server.padding.PKCS1v15(), server.hashes.SHA256())
        except (ValueError, server.InvalidSignature):
            raise Refusal(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you provided.")
        with server.lock:
            server.verified += 1
        return signed

    # -- requests --

    def handle_any(self):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = urllib.parse.unquote(url.path).lstrip("/").split("/", 1)
        bucket, key = parts[0], parts[1] if len(parts) > 1 else ""
        try:
            if "upload_id" in query:
                return self.session(query["upload_id"][0], body)
            anonymous = "X-Goog-Signature" not in url.query
            if anonymous and server.public_read and self.command in ("GET", "HEAD") and key:
                signed = []
            else:
                signed = self.verify(url.path, url.query)
            if bucket not in server.buckets:
                raise Refusal(404, "NoSuchBucket", "The specified bucket does not exist.")
            if bucket in server.refused:
                raise Refusal(403, "AccessDenied", "%s does not have storage.objects.create access." % server.email)
            if self.command == "GET" and not key:
                with server.lock:
                    names = sorted(k for b, k in server.objects if b == bucket)[:1]
                xml = "<ListBucketResult><Name>%s</Name>%s</ListBucketResult>" % (
                    bucket, "".join("<Contents><Key>%s</Key></Contents>" % n for n in names))
                return self.answer(200, xml.encode(), [("Content-Type", "application/xml")])
            if self.command in ("GET", "HEAD"):
                with server.lock:
                    found = server.objects.get((bucket, key))
                if not found:
                    raise Refusal(404, "NoSuchKey", "The specified key does not exist.")
                return self.answer(200, found[0], [("Content-Type", found[1])])
            if self.command == "PUT":
                if "content-type" not in signed:
                    raise Refusal(403, "SignatureDoesNotMatch", "reel signs the Content-Type of uploads")
                with server.lock:
                    inject = server.fail_puts > 0
                    if inject:
                        server.fail_puts -= 1
                        server.failed += 1
                if inject:
                    raise Refusal(503, "ServiceUnavailable", "injected")
                with server.lock:
                    server.objects[(bucket, key)] = (body, self.headers.get("Content-Type", ""))
                return self.answer(200, b"", [("ETag", '"%s"' % hashlib.md5(body).hexdigest())])
            if self.command == "POST" and "x-goog-resumable" in signed:
                if self.headers.get("x-goog-resumable") != "start":
                    raise Refusal(400, "InvalidArgument", "x-goog-resumable must be start")
                upload_id = secrets.token_urlsafe(24)
                with server.lock:
                    server.sessions[upload_id] = {"bucket": bucket, "key": key, "data": bytearray(),
                                                  "type": self.headers.get("Content-Type", "")}
                location = "http://%s%s?%s&upload_id=%s" % (self.headers["Host"], url.path, url.query, upload_id)
                return self.answer(201, b"", [("Location", location)])
            raise Refusal(400, "InvalidArgument", "the fake does not do %s here" % self.command)
        except Refusal as r:
            with server.lock:
                server.refusals.append((r.status, r.code))
            return self.error(r.status, r.code, r.message)

    def session(self, upload_id, body):
        server = self.server
        with server.lock:
            s = server.sessions.get(upload_id)
        if s is None or self.command != "PUT":
            raise Refusal(404, "NoSuchUpload", "no such upload session")
        m = re.fullmatch(r"bytes (\*|(\d+)-(\d+))/(\d+)", self.headers.get("Content-Range", ""))
        if not m:
            raise Refusal(400, "InvalidArgument", "Content-Range is missing or malformed")
        total = int(m.group(4))
        with server.lock:
            held = len(s["data"])
            if m.group(1) == "*":
                server.status_queries += 1
                if held == total and (s["bucket"], s["key"]) in server.objects:
                    return self.answer(200)
                return self.answer(308, b"", [("Range", "bytes=0-%d" % (held - 1))] if held else [])
            start, end = int(m.group(2)), int(m.group(3))
            server.chunks.append((start, len(body)))
            if len(body) != end - start + 1 or start > held:
                raise Refusal(400, "InvalidArgument", "chunk does not match Content-Range or leaves a gap")
            if end + 1 < total and len(body) % CHUNK_UNIT:
                raise Refusal(400, "InvalidArgument", "a non-final chunk must be a multiple of 256 KiB")
            if server.fail_chunks > 0 and end + 1 < total:
                server.fail_chunks -= 1
                server.failed += 1
                s["data"][start:] = body[:CHUNK_UNIT]  # part of the chunk made it, then the server failed
                raise Refusal(503, "ServiceUnavailable", "injected after keeping 256 KiB")
            s["data"][start:] = body
            if len(s["data"]) == total:
                server.objects[(s["bucket"], s["key"])] = (bytes(s["data"]), s["type"])
                return self.answer(200, b"", [("ETag", '"%s"' % hashlib.md5(s["data"]).hexdigest())])
            return self.answer(308, b"", [("Range", "bytes=0-%d" % (len(s["data"]) - 1))])

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any


# ------------------------------------------------------------------- tests --

def storage(fake, **extra):
    s = {"backend": "gcs", "endpoint": fake.endpoint, "bucket": BUCKET, "credentials_file": os.path.abspath(KEY_PATH),
         "multipart_threshold_bytes": 5 * MiB, "multipart_part_bytes": 5 * MiB}
    s.update(extra)
    return s


def pipeline(tmp, size):
    script = h.write_script(tmp, "pipe-%d.sh" % size, "#!/bin/sh\nhead -c %d /dev/urandom > output/final_video.mp4\n"
                            "cp output/final_video.mp4 %s/last-%d.bin\n" % (size, tmp, size))
    return {"default_backend": "command", "command": [script]}


def produced(tmp, size):
    with open(os.path.join(tmp, "last-%d.bin" % size), "rb") as f:
        return f.read()


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run_job(r, timeout=40):
    status, _, job = r.json("POST", "/v1/jobs", {"prompt": "deliver me"})
    if status != 202:
        raise h.ReeldError("POST answered %d" % status)
    return r.wait_job(job["id"], {"finished", "failed"}, timeout=timeout)


def check_delivered(c, fake, r, tmp, job, size, what):
    if not c.eq(job["status"], "finished", "%s: the job finishes (error %r)" % (what, job.get("error"))):
        return None
    month = (job.get("created_at") or "")[:7]  # the key's YYYY-MM is the job's creation month (UTC)
    key = "reel/%s/%s/final_video.mp4" % (month, job["id"])
    c.eq(job.get("gcs_uri"), "gs://%s/%s" % (BUCKET, key), "%s: gcs_uri names the object" % what)
    c.eq(job.get("artifact_uri"), job.get("gcs_uri"), "%s: artifact_uri is the gs:// URI too" % what)
    expected = produced(tmp, size)
    stored = fake.objects.get((BUCKET, key))
    c.check(stored is not None and stored[0] == expected,
            "%s: the fake holds the same %d bytes (got %s)" % (what, size, len(stored[0]) if stored else None))
    c.eq(stored[1] if stored else None, "video/mp4", "%s: stored as video/mp4" % what)
    return key


def body(c):
    load_crypto()
    fake = FakeGCS(KEY_PATH)
    tmp = tempfile.mkdtemp(prefix="reel-gcs-")
    try:
        # --- a single signed PUT, then downloads through /artifact ---
        size = 200_000
        with h.Reeld(service={"storage": storage(fake)}, pipeline=pipeline(tmp, size)) as r:
            st, _, ready = r.json("GET", "/readyz", token=False)
            c.eq(st, 200, "/readyz is 200 with a reachable bucket (%r)" % (ready,))
            job = run_job(r)
            key = check_delivered(c, fake, r, tmp, job, size, "single PUT")
            c.eq(fake.chunks, [], "a file below the threshold takes no resumable session")
            if key:
                st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job["id"])
                url = (art or {}).get("url", "")
                c.check(st == 200 and url.startswith("%s/%s/%s?" % (fake.endpoint, BUCKET, key))
                        and "X-Goog-Signature=" in url, "/artifact answers a V4-signed URL on the endpoint")
                c.eq((art or {}).get("expires_in"), 3600, "expires_in is the configured default")
                c.eq((art or {}).get("gcs_uri"), job["gcs_uri"], "/artifact names the gcs_uri")
                st, data = fetch(url)
                c.check(st == 200 and data == produced(tmp, size),
                        "the fake accepts the signed URL and it downloads the same bytes (%d, %d bytes)"
                        % (st, len(data)))
                tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
                st, data = fetch(tampered)
                c.check(st == 403 and b"SignatureDoesNotMatch" in data, "the fake refuses a tampered signature")
                st, data = fetch(url.split("?")[0])
                c.eq(st, 403, "the fake refuses an unsigned URL (the bucket is not public)")
                out = subprocess.run([os.environ.get("REEL_VECTORS", os.path.join(h.BUILD_DIR, "reel-vectors")),
                                      "sign-gcs", "--key", KEY_PATH, "--bucket", BUCKET, "--object", key,
                                      "--method", "GET", "--time", str(int(time.time()) - 7200), "--expires", "60",
                                      "--endpoint", fake.endpoint], capture_output=True, text=True)
                st, data = fetch(out.stdout.strip()) if out.returncode == 0 else (None, b"")
                c.check(st == 403 and b"ExpiredToken" in data, "the fake refuses an expired URL (%r)" % st)
                st, _, short = r.json("GET", "/v1/jobs/%s/artifact?expires_in=120" % job["id"])
                c.check(st == 200 and "X-Goog-Expires=120&" in short["url"] and short["expires_in"] == 120,
                        "?expires_in=120 signs a 120-second URL")

            # --- 503s on the PUT: retried with backoff, then delivered ---
            fake.fail_puts, fake.failed = 3, 0
            job = run_job(r)
            check_delivered(c, fake, r, tmp, job, size, "after three 503s")
            c.eq(fake.failed, 3, "the fake did answer 503 three times")

        # --- resumable upload above the threshold, chunks rounded down to 256 KiB ---
        size = 12 * MiB + 12345
        part = 5 * MiB + 100_000  # not a multiple of 256 KiB: reel rounds down to 5 MiB
        with h.Reeld(service={"storage": storage(fake, multipart_part_bytes=part)}, pipeline=pipeline(tmp, size)) as r:
            fake.chunks = []
            job = run_job(r)
            check_delivered(c, fake, r, tmp, job, size, "resumable")
            c.eq(fake.chunks, [(0, 5 * MiB), (5 * MiB, 5 * MiB), (10 * MiB, 2 * MiB + 12345)],
                 "the file goes in 5 MiB chunks (5 MiB + 100000 rounded down to 256 KiB), then the rest")

            # a chunk fails after the server kept part of it: reel asks what GCS holds and resumes there
            fake.chunks, fake.fail_chunks, fake.failed, fake.status_queries = [], 1, 0, 0
            job = run_job(r)
            check_delivered(c, fake, r, tmp, job, size, "resumable with an interrupted chunk")
            c.eq(fake.failed, 1, "the fake failed one chunk with 503")
            c.check(fake.status_queries >= 1, "reel queried the session's status (bytes */SIZE)")
            c.check((CHUNK_UNIT, 5 * MiB) in fake.chunks,
                    "reel resumed from the byte GCS reported, not from the chunk's start: %r" % fake.chunks)
            log = r.log_text()
            c.check("upload_id" not in log and "X-Goog-Signature" not in log,
                    "the session URI and signatures stay out of the log")

        # --- signed_urls: false -> the public URL, expires_in 0 ---
        size = 30_000
        with h.Reeld(service={"storage": storage(fake, signed_urls=False)}, pipeline=pipeline(tmp, size)) as r:
            job = run_job(r)
            key = check_delivered(c, fake, r, tmp, job, size, "public delivery")
            if key:
                st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job["id"])
                public = "%s/%s/%s" % (fake.endpoint, BUCKET, key)
                c.eq((art or {}).get("url"), public, "signed_urls: false gives the public URL")
                c.eq((art or {}).get("expires_in"), 0, "a public URL has expires_in 0")
                fake.public_read = True
                st, data = fetch(public)
                fake.public_read = False
                c.check(st == 200 and data == produced(tmp, size), "a public bucket serves it (%r)" % st)
                st, headers, _ = r.request("GET", "/v1/jobs/%s/artifact?redirect=true" % job["id"])
                c.check(st in (302, 307) and headers.get("location") == public, "redirect=true points at it")

        # --- a permanent 403: failed at once, clearly, the video kept ---
        with h.Reeld(service={"storage": storage(fake, bucket=REFUSED_BUCKET)}, pipeline=pipeline(tmp, 1000)) as r:
            st, _, ready = r.json("GET", "/readyz", token=False)
            checks = (ready or {}).get("checks", {})
            c.check(st == 503 and REFUSED_BUCKET in checks.get("storage", "") and "403" in checks.get("storage", ""),
                    "/readyz is 503 for a bucket that refuses the key: %r" % (ready,))
            t0 = time.monotonic()
            job = run_job(r)
            elapsed = time.monotonic() - t0
            err = job.get("error") or ""
            c.eq(job["status"], "failed", "a refused bucket fails the job")
            c.check(elapsed < 10, "it fails quickly, without retrying a permanent error (%.1f s)" % elapsed)
            c.check("403 AccessDenied" in err and "gcs" in err and "gs://%s/" % REFUSED_BUCKET in err,
                    "the error names the backend and GCS's answer: %r" % err)
            c.check("failed-uploads/%s/final_video.mp4" % job["id"] in err and r.data_dir not in err,
                    "the error says where the video is kept, in config terms: %r" % err)
            c.check(os.path.isfile(os.path.join(r.data_dir, "failed-uploads", job["id"], "final_video.mp4")),
                    "the video is kept for inspection")
            c.check(job.get("gcs_uri") is None, "no gcs_uri is set for an object that was never confirmed")
            with open(KEY_PATH, encoding="utf-8") as f:
                pem_lines = json.load(f)["private_key"].splitlines()[1:-1]
            log = r.log_text()
            c.check("X-Goog-Signature" not in log and "X-Goog-Credential" not in log and "PRIVATE KEY" not in log
                    and not any(line in log for line in pem_lines if len(line) > 20),
                    "no signature, credential or key material in the log")

        # --- /readyz: a missing bucket, an unreachable endpoint, a wrong key ---
        with h.Reeld(service={"storage": storage(fake, bucket="no-such-bucket")}, pipeline=pipeline(tmp, 10)) as r:
            st, _, ready = r.json("GET", "/readyz", token=False)
            text = (ready or {}).get("checks", {}).get("storage", "")
            c.check(st == 503 and "no-such-bucket" in text and "service.storage.bucket" in text
                    and "NoSuchBucket" in text, "/readyz is 503 for a missing bucket and names it: %r" % (ready,))
        closed_port = h.free_port()
        with h.Reeld(service={"storage": storage(fake, endpoint="http://127.0.0.1:%d" % closed_port)},
                     pipeline=pipeline(tmp, 10)) as r:
            st, _, ready = r.json("GET", "/readyz", token=False)
            text = (ready or {}).get("checks", {}).get("storage", "")
            c.check(st == 503 and BUCKET in text and "unreachable" in text and "X-Goog" not in text,
                    "/readyz is 503 when the endpoint is unreachable: %r" % (ready,))
        _, _, serialization, _, rsa = load_crypto()
        with open(KEY_PATH, encoding="utf-8") as f:
            account = json.load(f)
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        account["private_key"] = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()).decode()
        wrong_key = os.path.join(tmp, "wrong-key.json")
        with open(wrong_key, "w", encoding="utf-8") as f:
            json.dump(account, f)
        with h.Reeld(service={"storage": storage(fake, credentials_file=wrong_key)}, pipeline=pipeline(tmp, 10)) as r:
            st, _, ready = r.json("GET", "/readyz", token=False)
            text = (ready or {}).get("checks", {}).get("storage", "")
            c.check(st == 503 and "SignatureDoesNotMatch" in text,
                    "/readyz is 503 when the fake rejects the key's signatures: %r" % (ready,))

        # --- a credentials file that is not a key: reeld refuses to start, naming the key ---
        bad = os.path.join(tmp, "not-a-key.json")
        with open(bad, "w", encoding="utf-8") as f:
            f.write("{}")
        r = h.Reeld(service={"storage": storage(fake, credentials_file=bad)}, start=False)
        try:
            r.write_config()
            out = subprocess.run([r.binary, "--config", r.config_path], capture_output=True, text=True, timeout=20)
            c.check(out.returncode != 0 and "service.storage.credentials_file" in out.stderr,
                    "reeld refuses a credentials_file that is not a service-account key: %r" % out.stderr.strip())
        finally:
            r.close()
        c.check(fake.verified > 0, "the fake verified %d signatures" % fake.verified)
    finally:
        fake.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
