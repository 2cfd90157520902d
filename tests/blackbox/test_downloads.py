#!/usr/bin/env python3
"""Signed artifact downloads (GET /v1/jobs/{id}/artifact and /v1/files/...).

A command-backend job writes 100000 random bytes as output/final_video.mp4
(a copy is kept outside the workspace). The test then checks, without a
token: the full download is byte-identical; HEAD gives Content-Length and no
body; Range requests give 206 with the right bytes and Content-Range, an
unsatisfiable range 416; If-None-Match with the ETag gives 304; a tampered
signature or expires, another job's signature, missing parameters, an
expired URL and a wrong file name are refused (403, or 404 for a path that
names nothing). Because service.signing_key is set, the test computes
URLs itself with the documented scheme

    key = SHA-256(signing_key)
    signature = hex(HMAC-SHA256(key, "reel-download-v1\\nGET\\n{path}\\n{expires}"))

so an already-expired URL is refused and a future one works. redirect=true
answers 302 with a Location that works. The access log never contains a
signature, the signing key or the bearer token.
"""

import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

SIGNING_KEY = "blackbox-signing-key-0123456789"
SIZE = 100000


def sign(job_id, expires, key=SIGNING_KEY):
    path = "/v1/files/%s/final_video.mp4" % job_id
    mac = hmac.new(hashlib.sha256(key.encode()).digest(),
                   ("reel-download-v1\nGET\n%s\n%d" % (path, expires)).encode(), hashlib.sha256)
    return path, mac.hexdigest()


def file_url(job_id, expires, signature=None):
    path, sig = sign(job_id, expires)
    return "%s?expires=%d&signature=%s" % (path, expires, signature if signature is not None else sig)


def raw_exchange(port, data, timeout=5.0):
    """Sends bytes on a fresh connection and reads until the server closes
    (or timeout); returns everything received."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        s.close()


def check_forbidden(c, r, what, path, statuses=(403,)):
    st, hd, body = r.request("GET", path, token=False)
    c.check(st in statuses, "%s -> %s (got %d)" % (what, "/".join(map(str, statuses)), st))
    c.check(body != r.expected_bytes and len(body) != SIZE, "%s: no file bytes in the answer" % what)
    if hd.get("content-type", "").startswith("application/problem+json"):
        try:
            doc = json.loads(body)
            c.eq(doc.get("status"), st, "%s: problem status equals the HTTP status" % what)
            c.eq(doc.get("request_id"), hd.get("x-request-id"), "%s: request_id equals X-Request-Id" % what)
        except ValueError:
            c.fail("%s: problem body is JSON (%r)" % (what, body[:200]))
    else:
        c.fail("%s: Content-Type application/problem+json (got %r)" % (what, hd.get("content-type")))
    return st


def finish_job(c, r, copies, name):
    st, _, job = r.json("POST", "/v1/jobs", {"prompt": "download test " + name})
    if not c.eq(st, 202, "POST /v1/jobs (%s) -> 202" % name):
        return None, None
    done = r.wait_job(job["id"], "finished", timeout=30)
    c.eq(done.get("status"), "finished", "job %s finished" % name)
    with open(os.path.join(copies, "last.bin"), "rb") as f:
        data = f.read()
    c.eq(len(data), SIZE, "the script wrote %d bytes" % SIZE)
    return job["id"], data


def body(c):
    copies = tempfile.mkdtemp(prefix="reel-downloads-")
    script = h.write_script(copies, "job.sh", """
        set -e
        mkdir -p output
        head -c %d /dev/urandom > output/final_video.mp4
        cp output/final_video.mp4 %s/last.bin
    """ % (SIZE, copies))
    signatures = set()
    try:
        with h.Reeld(service={"workers": 1, "signing_key": SIGNING_KEY},
                     pipeline={"default_backend": "command", "command": [script]}) as r:
            jid, data = finish_job(c, r, copies, "one")
            if jid is None:
                return
            r.expected_bytes = data
            jid2, data2 = finish_job(c, r, copies, "two")
            c.check(data2 != data, "the two jobs have different artifacts")

            # -- the artifact document --
            t0 = int(time.time())
            st, hd, art = r.json("GET", "/v1/jobs/%s/artifact" % jid)
            if not c.eq(st, 200, "GET /v1/jobs/{id}/artifact of a finished job -> 200"):
                return
            c.check(bool(hd.get("x-request-id")), "artifact answer carries X-Request-Id")
            for key in ("artifact_uri", "url", "expires_in"):
                c.check(key in art, "artifact document has %s (got %r)" % (key, sorted(art)))
            c.check("gcs_uri" in art, "artifact document has gcs_uri (null for local storage)")
            c.eq(art.get("expires_in"), 3600, "expires_in defaults to service.artifact_url_ttl_seconds 3600")
            c.check(str(art.get("artifact_uri", "")).startswith("reel-local:"),
                    "artifact_uri is a reel-local: URI for local storage (got %r)" % art.get("artifact_uri"))
            _, _, jobdoc = r.json("GET", "/v1/jobs/" + jid)
            months = {str((jobdoc or {}).get(k) or "")[:7] for k in ("created_at", "finished_at")}
            c.check(any(str(art.get("artifact_uri", "")) == "reel-local:reel/%s/%s/final_video.mp4" % (m, jid)
                        for m in months if m),
                    "artifact_uri ends with the key reel/{YYYY-MM}/{job_id}/final_video.mp4 (got %r)"
                    % art.get("artifact_uri"))
            c.eq(art.get("artifact_uri"), (jobdoc or {}).get("artifact_uri"),
                 "the artifact document and the job agree on artifact_uri")
            url = urllib.parse.urlsplit(art.get("url", ""))
            c.eq("%s://%s" % (url.scheme, url.netloc), r.url, "url starts with the public base URL")
            c.eq(url.path, "/v1/files/%s/final_video.mp4" % jid, "url path is /v1/files/{id}/final_video.mp4")
            q = urllib.parse.parse_qs(url.query)
            expires = int(q.get("expires", ["0"])[0]) if q.get("expires", ["x"])[0].isdigit() else 0
            c.check(abs(expires - (t0 + 3600)) <= 5, "expires is now + 3600 (got %d, now %d)" % (expires, t0))
            given_sig = q.get("signature", [""])[0]
            signatures.add(given_sig)
            c.check(re.fullmatch(r"[0-9a-f]{64}", given_sig or "") is not None,
                    "signature is 64 lowercase hex digits (got %r)" % given_sig)
            c.eq(given_sig, sign(jid, expires)[1],
                 "signature = hex(HMAC-SHA256(SHA-256(signing_key), reel-download-v1\\nGET\\npath\\nexpires))")
            local = url.path + "?" + url.query

            # -- full download, no token --
            st, hd, got = r.request("GET", local, token=False)
            c.eq(st, 200, "GET the signed URL without a token -> 200")
            c.check(got == data, "downloaded bytes equal the bytes the job wrote (%d vs %d)" % (len(got), len(data)))
            c.eq(hd.get("content-type", "").split(";")[0], "video/mp4", "Content-Type video/mp4")
            c.eq(hd.get("content-length"), str(SIZE), "Content-Length %d" % SIZE)
            c.check(bool(hd.get("x-request-id")), "download carries X-Request-Id")
            etag = hd.get("etag")
            c.check(bool(etag), "download carries an ETag (got %r)" % etag)
            c.check("bytes" in hd.get("accept-ranges", ""), "Accept-Ranges: bytes (got %r)" % hd.get("accept-ranges"))
            st, _, got_tok = r.request("GET", local, token=True)
            c.check(st == 200 and got_tok == data, "the signed URL also works when a bearer token is sent")

            # -- HEAD: headers and no body (read raw until the server closes) --
            st, hd, got = r.request("HEAD", local, token=False)
            c.eq(st, 200, "HEAD the signed URL -> 200")
            c.eq(hd.get("content-length"), str(SIZE), "HEAD Content-Length %d" % SIZE)
            c.eq(hd.get("etag"), etag, "HEAD gives the same ETag")
            c.eq(hd.get("content-type", "").split(";")[0], "video/mp4", "HEAD Content-Type video/mp4")
            raw = raw_exchange(r.port, ("HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % local).encode())
            head, sep, rest = raw.partition(b"\r\n\r\n")
            c.check(head.startswith(b"HTTP/1.1 200"), "raw HEAD -> 200 (got %r)" % head[:40])
            c.eq(len(rest), 0, "HEAD sends no body bytes")
            # A HEAD followed by a GET on one connection: the GET's answer starts right after the HEAD's head.
            raw = raw_exchange(r.port, ("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                                        "Connection: close\r\n\r\n" % local).encode())
            _, _, rest = raw.partition(b"\r\n\r\n")
            c.check(rest.startswith(b"HTTP/1.1 200"),
                    "a request after HEAD on the same connection is answered right after the head (got %r)" % rest[:40])

            # -- ranges --
            for rng, lo, hi in [("bytes=0-99", 0, 99), ("bytes=100-", 100, SIZE - 1),
                                ("bytes=-50", SIZE - 50, SIZE - 1), ("bytes=99990-200000", 99990, SIZE - 1),
                                ("bytes=5-5", 5, 5)]:
                st, hd, got = r.request("GET", local, token=False, headers={"Range": rng})
                c.eq(st, 206, "Range %s -> 206" % rng)
                c.eq(hd.get("content-range"), "bytes %d-%d/%d" % (lo, hi, SIZE), "Range %s: Content-Range" % rng)
                c.check(got == data[lo:hi + 1], "Range %s: the right %d bytes (got %d)" % (rng, hi - lo + 1, len(got)))
                c.eq(hd.get("content-length"), str(hi - lo + 1), "Range %s: Content-Length" % rng)
            st, hd, got = r.request("HEAD", local, token=False, headers={"Range": "bytes=0-99"})
            c.eq((st, hd.get("content-range")), (206, "bytes 0-99/%d" % SIZE), "HEAD with Range 0-99 -> 206 + Content-Range")
            for rng in ("bytes=abc", "items=0-5", "bytes=100-50"):
                st, hd, got = r.request("GET", local, token=False, headers={"Range": rng})
                c.check(st == 200 and got == data, "invalid Range %r is ignored: 200 with the file (got %d)" % (rng, st))
            st, hd, got = r.request("GET", local, token=False, headers={"Range": "bytes=0-1,5-6"})
            c.check((st == 200 and got == data) or (st == 206 and "multipart/byteranges" in hd.get("content-type", "")),
                    "a multi-range request gets the whole file or multipart/byteranges (got %d %r)"
                    % (st, hd.get("content-type")))
            for rng in ("bytes=999999999-", "bytes=%d-" % SIZE, "bytes=-0"):
                st, hd, got = r.request("GET", local, token=False, headers={"Range": rng})
                c.eq(st, 416, "Range %s -> 416" % rng)
                c.eq(hd.get("content-range"), "bytes */%d" % SIZE, "416 for %s: Content-Range bytes */%d" % (rng, SIZE))
                c.check(data[:64] not in got, "416 carries no file bytes")

            # -- conditional --
            st, hd, got = r.request("GET", local, token=False, headers={"If-None-Match": etag or "x"})
            c.eq(st, 304, "If-None-Match with the ETag -> 304")
            c.eq(got, b"", "304 has no body")
            c.eq(hd.get("etag"), etag, "304 repeats the ETag")
            st, _, got = r.request("GET", local, token=False, headers={"If-None-Match": '"something-else"'})
            c.check(st == 200 and got == data, "If-None-Match with another ETag -> 200 with the file (got %d)" % st)
            st, _, _ = r.request("GET", local, token=False, headers={"If-None-Match": "*"})
            c.eq(st, 304, "If-None-Match: * -> 304")
            st, _, got = r.request("GET", local, token=False, headers={"If-None-Match": '"other", %s' % etag})
            c.eq(st, 304, "If-None-Match with a list that contains the ETag -> 304 (RFC 9110 13.1.2)")
            st, _, got = r.request("GET", local, token=False, headers={"If-None-Match": "W/%s" % etag})
            c.eq(st, 304, "If-None-Match with the weak form of the ETag -> 304 (weak comparison)")
            st, _, got = r.request("HEAD", local, token=False, headers={"If-None-Match": etag or "x"})
            c.eq(st, 304, "HEAD with If-None-Match the ETag -> 304")
            # If-Range: the range only when the validator still matches, else the whole file with 200.
            st, hd, got = r.request("GET", local, token=False, headers={"Range": "bytes=0-9", "If-Range": etag or "x"})
            c.check(st == 206 and got == data[:10], "Range with a matching If-Range -> 206 with the range (got %d)" % st)
            for ifr in ('"an-old-etag"', "Mon, 01 Jan 2001 00:00:00 GMT"):
                st, hd, got = r.request("GET", local, token=False, headers={"Range": "bytes=0-9", "If-Range": ifr})
                c.eq(st, 200, "Range with a stale If-Range %s -> 200" % ifr)
                c.check(got == data and hd.get("content-length") == str(SIZE) and "content-range" not in hd,
                        "stale If-Range %s: the 200 carries the whole file (got %d bytes, Content-Length %r)"
                        % (ifr, len(got), hd.get("content-length")))
            st, _, got = r.request("GET", local, token=False, headers={"If-Match": '"not-the-etag"'})
            c.eq(st, 412, "If-Match with another ETag -> 412 (RFC 9110 13.1.1)")
            st, _, got = r.request("GET", local, token=False, headers={"If-Match": etag or "x"})
            c.check(st == 200 and got == data, "If-Match with the ETag -> 200 (got %d)" % st)

            # -- refused URLs --
            flipped = given_sig[:10] + ("0" if given_sig[10] != "0" else "1") + given_sig[11:]
            check_forbidden(c, r, "signature with one hex digit flipped",
                            "%s?expires=%d&signature=%s" % (url.path, expires, flipped))
            check_forbidden(c, r, "expires changed by one second",
                            "%s?expires=%d&signature=%s" % (url.path, expires + 1, given_sig))
            check_forbidden(c, r, "signature truncated",
                            "%s?expires=%d&signature=%s" % (url.path, expires, given_sig[:-2]))
            check_forbidden(c, r, "empty signature", "%s?expires=%d&signature=" % (url.path, expires))
            check_forbidden(c, r, "no signature", "%s?expires=%d" % (url.path, expires))
            check_forbidden(c, r, "no expires", "%s?signature=%s" % (url.path, given_sig))
            check_forbidden(c, r, "no query at all", url.path)
            check_forbidden(c, r, "non-numeric expires", "%s?expires=abc&signature=%s" % (url.path, given_sig))
            if jid2:
                st, _, art2 = r.json("GET", "/v1/jobs/%s/artifact" % jid2)
                u2 = urllib.parse.urlsplit((art2 or {}).get("url", ""))
                q2 = urllib.parse.parse_qs(u2.query)
                sig2, exp2 = q2.get("signature", [""])[0], q2.get("expires", ["0"])[0]
                signatures.add(sig2)
                check_forbidden(c, r, "job one's path with job two's expires+signature",
                                "%s?expires=%s&signature=%s" % (url.path, exp2, sig2))
                st, _, got = r.request("GET", u2.path + "?" + u2.query, token=False)
                c.check(st == 200 and got == data2, "job two's own URL downloads job two's bytes")
            bad_key = file_url(jid, expires, sign(jid, expires, key="another-key")[1])
            check_forbidden(c, r, "URL signed with another key", bad_key)
            now = int(time.time())
            for past in (now - 1, now - 3600):
                p, s = sign(jid, past)
                signatures.add(s)
                check_forbidden(c, r, "correctly signed URL that expired %ds ago" % (now - past),
                                "%s?expires=%d&signature=%s" % (p, past, s))
            future = now + 600
            p, s = sign(jid, future)
            signatures.add(s)
            st, hd, got = r.request("GET", "%s?expires=%d&signature=%s" % (p, future, s), token=False)
            c.check(st == 200 and got == data,
                    "a URL the test signed itself (expires now+600) downloads the file (got %d)" % st)
            # The signature covers the file name: another name under the same id is refused.
            other = "/v1/files/%s/other.mp4?expires=%d&signature=%s" % (jid, expires, given_sig)
            check_forbidden(c, r, "a valid signature on another file name", other, statuses=(403, 404))
            trav = "/v1/files/%s/..%%2F..%%2Freel.db?expires=%d&signature=%s" % (jid, expires, given_sig)
            check_forbidden(c, r, "an encoded ../ file name", trav, statuses=(400, 403, 404))
            # A validly signed URL for a job that does not exist.
            ghost = "job_01M7ZSKM4R131V6P5546T7DNM4"
            p, s = sign(ghost, future)
            check_forbidden(c, r, "a valid signature for a job with no artifact",
                            "%s?expires=%d&signature=%s" % (p, future, s), statuses=(404,))

            # -- redirect=true --
            st, hd, got = r.request("GET", "/v1/jobs/%s/artifact?redirect=true&expires_in=120" % jid)
            c.eq(st, 302, "artifact with redirect=true -> 302")
            loc = hd.get("location", "")
            lu = urllib.parse.urlsplit(loc)
            c.eq("%s://%s%s" % (lu.scheme, lu.netloc, lu.path), r.url + url.path, "302 Location is the file URL")
            lq = urllib.parse.parse_qs(lu.query)
            signatures.add(lq.get("signature", [""])[0])
            try:
                c.check(abs(int(lq.get("expires", ["0"])[0]) - (int(time.time()) + 120)) <= 5,
                        "302 Location honours expires_in=120")
            except ValueError:
                c.fail("302 Location has a numeric expires (got %r)" % loc)
            st, _, got = r.request("GET", lu.path + "?" + lu.query, token=False)
            c.check(st == 200 and got == data, "the 302 Location downloads the file (got %d)" % st)
            st, _, _ = r.request("GET", "/v1/jobs/%s/artifact?redirect=false" % jid)
            c.eq(st, 200, "redirect=false -> 200 document")
            st, _, _ = r.request("GET", "/v1/jobs/%s/artifact?redirect=true" % jid, token=False)
            c.eq(st, 401, "artifact (redirect=true) without a token -> 401")

            # -- the log keeps no secrets --
            time.sleep(0.2)
            log = r.log_text()
            c.check("signature=" not in log, "the log never contains 'signature='")
            leaked = [s for s in signatures if s and s in log]
            c.check(not leaked, "the log contains none of the %d signatures seen (leaked %d)"
                    % (len(signatures), len(leaked)))
            c.check(h.TOKEN not in log, "the log never contains the bearer token")
            c.check(SIGNING_KEY not in log, "the log never contains the signing key")
            c.check("/v1/files/" in log, "downloads are in the access log (without their query)")
            c.check(r.running(), "reeld still running")
    finally:
        shutil.rmtree(copies, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
