"""S3-compatible delivery against a real S3-protocol server (@20minutes/s3rver 5,
which checks SigV4 header and query signatures and expiry), started on loopback:
jobs upload their artifacts (single PUT and parallel multipart), the presigned
URL downloads the same bytes, tampered and expired URLs are refused by the
server, boto3 reads the object independently, /readyz checks the bucket, and
faults: the server down during an upload, 503s, and a permanent 403."""
import hashlib
import http.client
import http.server
import os
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time

import reelharness as h

BUCKET = "reel-test"
KEY_ID, SECRET = "S3RVER", "S3RVER"  # s3rver's built-in credentials


class S3rver:
    def __init__(self, port=None):
        self.port = port or h.free_port()
        self.dir = tempfile.mkdtemp(prefix="reel-s3rver-")
        self.proc = None
        self.start()

    def start(self):
        script = os.path.join(h.SOURCE_DIR, "tests", "blackbox", "s3rver.js")
        self.proc = subprocess.Popen(["node", script, str(self.port), self.dir, BUCKET], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if "ready" not in line:
            raise h.ReeldError("s3rver did not start: %r (run scripts/install-deps.sh --test)" % line)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class FaultProxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Forwards to s3rver, keeping the client's Host header (it is signed), and
    spoils the first `fail_puts` PUT requests: mode "503" answers 503 SlowDown,
    mode "reset" reads half the body and drops the connection mid-upload."""
    daemon_threads = True

    def __init__(self, target_port, fail_puts, mode="503"):
        self.target_port, self.fail_puts, self.failed, self.mode = target_port, fail_puts, 0, mode
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        with self.server.lock:
            inject = self.command == "PUT" and self.server.failed < self.server.fail_puts
            if inject:
                self.server.failed += 1
        if inject and self.server.mode == "reset":
            self.rfile.read(length // 2)
            self.connection.shutdown(2)  # the connection dies in the middle of the body
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else None
        if inject:
            msg = b"<Error><Code>SlowDown</Code></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.server.target_port, timeout=30)
        headers = {k: v for k, v in self.headers.items()}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward


def storage(port, **extra):
    s = {"backend": "s3", "endpoint": "http://127.0.0.1:%d" % port, "region": "us-east-1", "bucket": BUCKET,
         "path_style": True, "access_key_id": KEY_ID, "secret_access_key": SECRET,
         "multipart_threshold_bytes": 5 * 1024 * 1024, "multipart_part_bytes": 5 * 1024 * 1024}
    s.update(extra)
    return s


def pipeline(tmp, size):
    script = h.write_script(tmp, "pipe-%d.sh" % size, "#!/bin/sh\nhead -c %d /dev/urandom > output/final_video.mp4\n"
                            "cp output/final_video.mp4 %s/last-%d.bin\n" % (size, tmp, size))
    return {"default_backend": "command", "command": [script]}


def fetch(url):
    """Downloads url with curl; returns (status, body)."""
    out = tempfile.NamedTemporaryFile(delete=False)
    out.close()
    try:
        p = subprocess.run(["curl", "-s", "-o", out.name, "-w", "%{http_code}", url], capture_output=True, text=True,
                           timeout=60)
        with open(out.name, "rb") as f:
            return int(p.stdout or 0), f.read()
    finally:
        os.unlink(out.name)


def run_job(r, timeout=60):
    status, _, job = r.json("POST", "/v1/jobs", {"prompt": "deliver me"})
    if status != 202:
        raise h.ReeldError("POST answered %d" % status)
    return r.wait_job(job["id"], {"finished", "failed"}, timeout=timeout)


def body(c):
    s3 = S3rver()
    tmp = tempfile.mkdtemp(prefix="reel-s3-")
    try:
        # --- delivery, single PUT and multipart ---
        for size in (200_000, 12 * 1024 * 1024):
            with h.Reeld(service={"storage": storage(s3.port)}, pipeline=pipeline(tmp, size)) as r:
                st, _, ready = r.json("GET", "/readyz", token=False)
                c.eq(st, 200, "/readyz is 200 with a reachable bucket (%r)" % (ready,))
                job = run_job(r)
                if not c.eq(job["status"], "finished", "a %d-byte artifact uploads (error %r)" % (size, job.get("error"))):
                    continue
                uri = job["artifact_uri"]
                c.check(uri.startswith("s3://%s/reel/" % BUCKET) and uri.endswith("/%s/final_video.mp4" % job["id"]),
                        "artifact_uri names the object: %s" % uri)
                key = uri[len("s3://%s/" % BUCKET):]
                with open(os.path.join(tmp, "last-%d.bin" % size), "rb") as f:
                    expected = f.read()
                _, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job["id"])
                url = art["url"]
                c.check("X-Amz-Signature=" in url and url.startswith("http://127.0.0.1:%d/" % s3.port),
                        "the artifact URL is a presigned S3 URL")
                st, data = fetch(url)
                c.check(st == 200 and hashlib.sha256(data).digest() == hashlib.sha256(expected).digest(),
                        "the presigned URL downloads the same %d bytes (got %d, %d bytes)" % (size, st, len(data)))
                tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
                c.eq(fetch(tampered)[0], 403, "s3rver refuses a tampered signature")
                out = subprocess.run([os.environ.get("REEL_VECTORS", os.path.join(h.BUILD_DIR, "reel-vectors")),
                                      "presign-s3", "--endpoint", "http://127.0.0.1:%d" % s3.port, "--region",
                                      "us-east-1", "--bucket", BUCKET, "--key", key, "--method", "GET",
                                      "--access-key", KEY_ID, "--secret", SECRET, "--time",
                                      str(int(time.time()) - 7200), "--expires", "60"],
                                     capture_output=True, text=True)
                c.check(out.returncode == 0 and fetch(out.stdout.strip())[0] == 403,
                        "s3rver refuses an expired presigned URL")
                import boto3  # Debian python3-boto3
                client = boto3.client("s3", endpoint_url="http://127.0.0.1:%d" % s3.port, region_name="us-east-1",
                                      aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
                listed = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
                c.check(key in listed, "boto3 lists the object")
                got = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                c.check(got == expected, "boto3 reads the same bytes")

        # --- the server answering 503 a few times: retried and delivered ---
        proxy = FaultProxy(s3.port, fail_puts=3)
        with h.Reeld(service={"storage": storage(proxy.server_address[1])}, pipeline=pipeline(tmp, 50_000)) as r:
            job = run_job(r)
            c.eq(job["status"], "finished", "after 3 answers of 503 the upload is retried and delivered")
            c.eq(proxy.failed, 3, "the proxy did answer 503 three times")
        proxy.shutdown()

        # --- connections dropped in the middle of two uploads: retried and delivered ---
        proxy = FaultProxy(s3.port, fail_puts=2, mode="reset")
        with h.Reeld(service={"storage": storage(proxy.server_address[1])}, pipeline=pipeline(tmp, 300_000)) as r:
            job = run_job(r)
            c.eq(job["status"], "finished", "after two connections reset mid-upload the artifact is delivered (%r)"
                 % job.get("error"))
            c.eq(proxy.failed, 2, "the proxy did drop two uploads mid-body")
            _, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job["id"])
            with open(os.path.join(tmp, "last-300000.bin"), "rb") as f:
                c.check(fetch(art["url"])[1] == f.read(), "the delivered object is complete")
        proxy.shutdown()

        # --- the server down during the upload, then back: the job still finishes ---
        slow = h.write_script(tmp, "slow.sh", "#!/bin/sh\nsleep 1\nhead -c 1000 /dev/urandom > output/final_video.mp4\n")
        with h.Reeld(service={"storage": storage(s3.port, upload_attempts=10)},
                     pipeline={"default_backend": "command", "command": [slow]}) as r:
            status, _, job = r.json("POST", "/v1/jobs", {"prompt": "outage"})
            s3.stop()
            time.sleep(2.5)
            s3.start()
            done = r.wait_job(job["id"], {"finished", "failed"}, timeout=60)
            c.eq(done["status"], "finished", "with the S3 server down for 2.5 s the job still finishes (%r)"
                 % done.get("error"))

        # --- a permanent 403: failed quickly, clearly, the video kept ---
        with h.Reeld(service={"storage": storage(s3.port, secret_access_key="wrong-secret-value")},
                     pipeline=pipeline(tmp, 1000)) as r:
            t0 = time.monotonic()
            job = run_job(r)
            elapsed = time.monotonic() - t0
            err = job.get("error") or ""
            c.eq(job["status"], "failed", "a wrong secret fails the job")
            c.check(elapsed < 10, "it fails quickly, without retrying a permanent error (%.1f s)" % elapsed)
            c.check("403" in err and "s3" in err, "the error names the storage answer: %r" % err)
            c.check("failed-uploads/%s/final_video.mp4" % job["id"] in err and r.data_dir not in err,
                    "the error says where the video is kept, in config terms: %r" % err)
            c.check(os.path.isfile(os.path.join(r.data_dir, "failed-uploads", job["id"], "final_video.mp4")),
                    "the video is kept for inspection")
            log = r.log_text()
            c.check("wrong-secret-value" not in log and "Signature=" not in log and "Credential=" not in log,
                    "no secret or signature in the log")

        # --- /readyz with a bucket that does not exist ---
        with h.Reeld(service={"storage": storage(s3.port, bucket="no-such-bucket")}, pipeline=pipeline(tmp, 10)) as r:
            st, _, ready = r.json("GET", "/readyz", token=False)
            c.eq(st, 503, "/readyz is 503 when the bucket is unreachable")
            c.check("no-such-bucket" in (ready or {}).get("checks", {}).get("storage", ""),
                    "/readyz names the bucket: %r" % (ready,))
    finally:
        s3.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
