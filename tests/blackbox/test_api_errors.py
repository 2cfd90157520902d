#!/usr/bin/env python3
"""Every error status of the /v1 contract (SPEC.md §3), from outside.

For each error the answer must be an RFC 9457 application/problem+json body
with type, title, status (equal to the HTTP status), detail, instance and
request_id, and request_id must equal the X-Request-Id header.

Covered: 415 (no / wrong Content-Type), 413 (body over service.max_body_bytes),
400 (each way a POST /v1/jobs body can be wrong, with a detail naming the
problem; 2000 CJK characters accepted, 2001 refused), 401 (no token, wrong
token, Basic), 404 (unknown job, malformed id, unknown path), 405 with Allow,
409 (cancel of a terminal job), 404 for the artifact of an unfinished job,
400 for bad expires_in / redirect / tail, 429 with Retry-After when the queue
is full; X-Request-Id on 2xx answers; /healthz, /readyz, /metrics,
/openapi.yaml and /docs without a token; /readyz 200 with the command backend
and 503 `not_ready` with the built-in (local) backend, not yet in this build.
"""

import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

JSON_CT = {"Content-Type": "application/json"}
UNKNOWN_ID = "job_01M7ZSKM4R131V6P5546T7DNM4"  # well-formed, never created
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def check_problem(c, what, answer, status, instance=None, detail_words=()):
    """Checks one problem answer; returns the parsed body (or None)."""
    got_status, headers, payload = answer
    if not c.eq(got_status, status, "%s -> %d" % (what, status)):
        print("       body: %r" % payload[:300])
    ctype = headers.get("content-type", "")
    c.check(ctype.split(";")[0].strip() == "application/problem+json",
            "%s: Content-Type is application/problem+json (got %r)" % (what, ctype))
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        c.fail("%s: body is JSON (got %r)" % (what, payload[:200]))
        return None
    if not c.check(isinstance(doc, dict), "%s: body is a JSON object" % what):
        return None
    missing = PROBLEM_KEYS - set(doc)
    c.check(not missing, "%s: problem has %s (missing %s)"
            % (what, ", ".join(sorted(PROBLEM_KEYS)), sorted(missing)))
    c.eq(doc.get("status"), got_status, "%s: problem status equals the HTTP status" % what)
    for key in ("type", "title", "detail", "instance", "request_id"):
        if key in doc:
            c.check(isinstance(doc[key], str) and doc[key] != "",
                    "%s: problem %s is a non-empty string (got %r)" % (what, key, doc.get(key)))
    rid = headers.get("x-request-id")
    c.check(bool(rid), "%s: X-Request-Id header present" % what)
    c.eq(doc.get("request_id"), rid, "%s: request_id equals X-Request-Id" % what)
    if instance is not None:
        c.eq(doc.get("instance"), instance, "%s: instance is the request path" % what)
    detail = str(doc.get("detail", "")).lower()
    for words in detail_words:
        alternatives = (words,) if isinstance(words, str) else words
        c.check(any(w.lower() in detail for w in alternatives),
                "%s: detail names the problem (mentions %s): %r"
                % (what, " or ".join(repr(w) for w in alternatives), doc.get("detail")))
    return doc


def post_raw(r, body, headers=None):
    return r.request("POST", "/v1/jobs", raw_body=body, headers=headers if headers is not None else JSON_CT)


def check_create_errors(c, r):
    # 415
    check_problem(c, "POST /v1/jobs without Content-Type",
                  post_raw(r, b'{"prompt":"a fox"}', {}), 415, "/v1/jobs")
    check_problem(c, "POST /v1/jobs with Content-Type text/plain",
                  post_raw(r, b'{"prompt":"a fox"}', {"Content-Type": "text/plain"}), 415, "/v1/jobs")

    # 413: max_body_bytes is 8192 here.
    big = b'{"prompt":"' + b"a" * 9000 + b'"}'
    check_problem(c, "POST /v1/jobs with a 9 KB body (max_body_bytes 8192)",
                  post_raw(r, big), 413, "/v1/jobs")

    # 400s, each with a detail naming the problem.
    cases = [
        ("invalid JSON", b'{"prompt": "a fox"', ["json"]),
        ("a JSON array", b'["a fox"]', ["object"]),
        ("a JSON string", b'"a fox"', ["object"]),
        ("no prompt", b'{}', ["prompt"]),
        ("an empty prompt", b'{"prompt": ""}', ["prompt", ("empty", "blank", "whitespace")]),
        ("a whitespace prompt", b'{"prompt": " \\t\\n  "}', ["prompt", ("empty", "blank", "whitespace")]),
        ("a numeric prompt", b'{"prompt": 42}', ["prompt", "string"]),
        ("a null prompt", b'{"prompt": null}', ["prompt"]),
        ("an array prompt", b'{"prompt": ["a"]}', ["prompt", "string"]),
        ("an extra field", b'{"prompt": "a fox", "size": "1280x720"}', ["size"]),
        ("a duplicate key", b'{"prompt": "a fox", "prompt": "a cat"}', ["duplicate"]),
        ("invalid UTF-8 bytes", b'{"prompt": "a \xff\xfe fox"}', [("utf-8", "utf8", "decode", "unicode")]),
        ("a lone surrogate escape", b'{"prompt": "a \\ud800 fox"}', [("utf-8", "utf8", "unicode", "surrogate")]),
        ("trailing garbage", b'{"prompt": "a fox"} x', ["json"]),
        ("an empty body", b'', ["json"]),
        ("an object prompt", b'{"prompt": {"text": "a fox"}}', ["prompt", "string"]),
        ("the key spelled Prompt", b'{"Prompt": "a fox"}', ["Prompt"]),
        ("a duplicate key written with an escape", b'{"prompt": "a", "\\u0070rompt": "b"}', ["duplicate"]),
        ("invalid UTF-8 in a key", b'{"pr\xffompt": "a fox"}', [("utf-8", "utf8", "decode", "unicode")]),
        ("an overlong UTF-8 encoding", b'{"prompt": "a \xc0\xaf fox"}', [("utf-8", "utf8", "decode", "unicode")]),
        ("a UTF-8 encoded surrogate", b'{"prompt": "a \xed\xa0\x80 fox"}', [("utf-8", "utf8", "decode", "unicode")]),
        ("a truncated UTF-8 sequence at the end", b'{"prompt": "a fox"} \xc3', [("utf-8", "utf8", "decode", "unicode")]),
        ("4000 nested arrays", b"[" * 4000 + b"]" * 4000, [("json", "object", "depth")]),
        ("2001 emoji (astral code points)", json.dumps({"prompt": "\U0001F98A" * 2001}, ensure_ascii=False).encode(),
         [("2000", "2001")]),
        ("2001 characters", json.dumps({"prompt": "a" * 2001}).encode(), [("2000", "2001")]),
        ("2001 CJK characters", json.dumps({"prompt": "\u72d0" * 2001}, ensure_ascii=False).encode(),
         [("2000", "2001")]),
    ]
    for name, body, words in cases:
        check_problem(c, "POST /v1/jobs with %s" % name, post_raw(r, body), 400, "/v1/jobs", words)

    # Boundaries that must be accepted.
    ok_cases = [
        ("2000 CJK characters (6000 bytes)", json.dumps({"prompt": "\u72d0" * 2000}, ensure_ascii=False).encode()),
        ("2000 ASCII characters", json.dumps({"prompt": "b" * 2000}).encode()),
        ("2000 characters, 1000 of them \\u escapes",
         json.dumps({"prompt": "\u00e9" * 1000 + "c" * 1000}).encode()),
        ("a prompt with surrounding whitespace", b'{"prompt": "  a fox  "}'),
        ("2000 emoji (8000 bytes)", json.dumps({"prompt": "\U0001F98A" * 2000}, ensure_ascii=False).encode()),
        ("1000 e + combining acute (2000 code points)", json.dumps({"prompt": "e\u0301" * 1000}, ensure_ascii=False).encode()),
        ("Content-Type with charset", b'{"prompt": "a fox"}'),
    ]
    for name, body in ok_cases:
        hdrs = {"Content-Type": "application/json; charset=utf-8"} if "charset" in name else JSON_CT
        status, headers, payload = post_raw(r, body, hdrs)
        c.eq(status, 202, "POST /v1/jobs with %s -> 202 (body %r)" % (name, payload[:200]))
        c.check(bool(headers.get("x-request-id")), "202 for %s carries X-Request-Id" % name)


def check_auth(c, r):
    for name, kwargs in [
        ("no Authorization", {"token": False}),
        ("a wrong bearer token", {"token": "not-the-token"}),
        ("an empty bearer token", {"headers": {"Authorization": "Bearer "}}),
        ("Basic credentials", {"headers": {"Authorization": "Basic dGVzdC10b2tlbi1hYmNkZWY6eA=="}}),
        ("Basic with the real token", {"headers": {"Authorization": "Basic " + h.TOKEN}}),
        ("the token without a scheme", {"headers": {"Authorization": h.TOKEN}}),
        ("a token prefix", {"token": h.TOKEN[:-1]}),
        ("a token with a suffix", {"token": h.TOKEN + "x"}),
    ]:
        for method, path in (("GET", "/v1/jobs"), ("GET", "/v1/jobs/" + UNKNOWN_ID)):
            ans = r.request(method, path, **kwargs)
            check_problem(c, "%s %s with %s" % (method, path, name), ans, 401, path)
            www = ans[1].get("www-authenticate", "")
            c.check(www.lower().startswith("bearer"),
                    "%s %s with %s: WWW-Authenticate: Bearer ... (got %r)" % (method, path, name, www))
    _, _, before = r.json("GET", "/v1/jobs?limit=100")
    ans = r.request("POST", "/v1/jobs", body={"prompt": "a fox"}, token=False)
    check_problem(c, "POST /v1/jobs without a token", ans, 401, "/v1/jobs")
    ans = r.request("POST", "/v1/jobs", body={"prompt": "a fox"}, token="wrong")
    check_problem(c, "POST /v1/jobs with a wrong token", ans, 401, "/v1/jobs")
    _, _, after = r.json("GET", "/v1/jobs?limit=100")
    c.eq(len((after or {}).get("jobs", [])), len((before or {}).get("jobs", [])),
         "a POST refused with 401 creates no job")


def check_not_found_and_methods(c, r):
    check_problem(c, "GET unknown job", r.request("GET", "/v1/jobs/" + UNKNOWN_ID), 404,
                  "/v1/jobs/" + UNKNOWN_ID)
    for bad in ("nope", "job_", "job_!!!", "..%2F..%2Fetc"):
        check_problem(c, "GET /v1/jobs/%s (malformed id)" % bad, r.request("GET", "/v1/jobs/" + bad), 404)
    check_problem(c, "GET unknown job's artifact",
                  r.request("GET", "/v1/jobs/%s/artifact" % UNKNOWN_ID), 404)
    check_problem(c, "GET unknown job's logs",
                  r.request("GET", "/v1/jobs/%s/logs" % UNKNOWN_ID), 404)
    check_problem(c, "POST cancel of an unknown job",
                  r.request("POST", "/v1/jobs/%s/cancel" % UNKNOWN_ID), 404)
    for path in ("/v1/nope", "/nope", "/v2/jobs", "/api/video/generate", "/jobs"):
        check_problem(c, "GET %s (unknown path)" % path, r.request("GET", path), 404, path)

    for method, path, must_allow in [
        ("DELETE", "/v1/jobs", {"GET", "POST"}),
        ("PUT", "/v1/jobs", {"GET", "POST"}),
        ("PUT", "/healthz", {"GET"}),
        ("POST", "/healthz", {"GET"}),
        ("POST", "/metrics", {"GET"}),
        ("DELETE", "/v1/jobs/" + UNKNOWN_ID, {"GET"}),
        ("GET", "/v1/jobs/%s/cancel" % UNKNOWN_ID, {"POST"}),
    ]:
        ans = r.request(method, path)
        check_problem(c, "%s %s" % (method, path), ans, 405, path)
        allow = {m.strip().upper() for m in ans[1].get("allow", "").split(",") if m.strip()}
        c.check(must_allow <= allow and method not in allow,
                "%s %s: Allow lists %s and not %s (got %r)"
                % (method, path, "/".join(sorted(must_allow)), method, ans[1].get("allow")))


def check_job_states(c, r, flags):
    """409 on cancel of terminal jobs; artifact 404 until finished; query parameter 400s."""
    go, fail = os.path.join(flags, "go"), os.path.join(flags, "fail")

    st, hd, job = r.json("POST", "/v1/jobs", {"prompt": "wait for the go flag"})
    if not c.eq(st, 202, "POST a blocking job -> 202"):
        return
    c.check(bool(hd.get("x-request-id")), "202 carries X-Request-Id")
    jid = job["id"]
    r.wait_job(jid, {"started", "progress"}, timeout=15)
    check_problem(c, "GET artifact of a running job", r.request("GET", "/v1/jobs/%s/artifact" % jid),
                  404, "/v1/jobs/%s/artifact" % jid)

    # Query parameters are validated (on a real job, so 404 cannot mask the 400).
    base = "/v1/jobs/%s/artifact" % jid
    for query in ("expires_in=59", "expires_in=604801", "expires_in=abc", "expires_in=-5",
                  "expires_in=", "expires_in=1e3", "redirect=maybe", "redirect=2"):
        check_problem(c, "GET artifact ?%s" % query, r.request("GET", base + "?" + query), 400,
                      detail_words=[query.split("=")[0]])
    for query in ("tail=-1", "tail=abc", "tail=1.5", "tail=10001"):
        check_problem(c, "GET logs ?%s" % query, r.request("GET", "/v1/jobs/%s/logs?%s" % (jid, query)), 400,
                      detail_words=["tail"])
    for query in ("status=bogus", "status=", "limit=abc", "limit=-1", "limit=0", "limit=101", "cursor=garbage"):
        check_problem(c, "GET /v1/jobs?%s" % query, r.request("GET", "/v1/jobs?" + query), 400,
                      detail_words=[query.split("=")[0]])

    open(go, "w").close()
    done = r.wait_job(jid, "finished", timeout=20)
    c.eq(done.get("status"), "finished", "the blocking job finished once released")
    ans = r.request("POST", "/v1/jobs/%s/cancel" % jid)
    check_problem(c, "cancel a finished job", ans, 409, "/v1/jobs/%s/cancel" % jid)
    st, _, body = r.json("GET", "/v1/jobs/%s/artifact?expires_in=60" % jid)
    c.eq(st, 200, "artifact with expires_in=60 (lower bound) -> 200")
    st, _, body = r.json("GET", "/v1/jobs/%s/artifact?expires_in=604800" % jid)
    c.eq(st, 200, "artifact with expires_in=604800 (upper bound) -> 200")
    c.eq((body or {}).get("expires_in"), 604800, "expires_in is echoed")
    st, _, _ = r.request("GET", "/v1/jobs/%s/artifact?redirect=false" % jid)
    c.eq(st, 200, "artifact with redirect=false -> 200")

    # A failed job: its artifact stays 404, and cancelling it is 409.
    open(fail, "w").close()
    st, _, job = r.json("POST", "/v1/jobs", {"prompt": "this one fails"})
    if c.eq(st, 202, "POST a failing job -> 202"):
        r.wait_job(job["id"], "failed", timeout=20)
        check_problem(c, "GET artifact of a failed job",
                      r.request("GET", "/v1/jobs/%s/artifact" % job["id"]), 404)
        check_problem(c, "cancel a failed job", r.request("POST", "/v1/jobs/%s/cancel" % job["id"]), 409)
    os.unlink(fail)

    # A canceled job: first cancel ok, second 409.
    os.unlink(go)
    st, _, job = r.json("POST", "/v1/jobs", {"prompt": "cancel me"})
    if c.eq(st, 202, "POST a job to cancel -> 202"):
        r.wait_job(job["id"], {"started", "progress"}, timeout=15)
        st, hd, body = r.json("POST", "/v1/jobs/%s/cancel" % job["id"])
        c.eq((st, body), (200, {"ok": True}), "cancel a running job -> 200 {\"ok\": true}")
        c.check(bool(hd.get("x-request-id")), "cancel 200 carries X-Request-Id")
        r.wait_job(job["id"], "canceled", timeout=20)
        check_problem(c, "cancel a canceled job", r.request("POST", "/v1/jobs/%s/cancel" % job["id"]), 409)
        check_problem(c, "GET artifact of a canceled job",
                      r.request("GET", "/v1/jobs/%s/artifact" % job["id"]), 404)


def check_open_endpoints(c, r):
    for path, ctype in (("/healthz", None), ("/readyz", "application/json"),
                        ("/metrics", "text/plain"), ("/openapi.yaml", None), ("/docs", "text/html")):
        st, hd, body = r.request("GET", path, token=False)
        c.eq(st, 200, "GET %s without a token -> 200" % path)
        c.check(bool(hd.get("x-request-id")), "GET %s carries X-Request-Id" % path)
        if ctype:
            c.check(hd.get("content-type", "").startswith(ctype),
                    "GET %s Content-Type %s (got %r)" % (path, ctype, hd.get("content-type")))
    st, _, ready = r.json("GET", "/readyz", token=False)
    c.eq((ready or {}).get("status"), "ready", "/readyz with the command backend: status ready")
    # A wrong token on an open endpoint does not turn it into a 401.
    st, _, _ = r.request("GET", "/healthz", token="wrong")
    c.eq(st, 200, "GET /healthz with a wrong token still -> 200")
    # 2xx on authenticated routes carry X-Request-Id, distinct per request.
    ids = set()
    for _ in range(3):
        st, hd, _ = r.request("GET", "/v1/jobs")
        c.eq(st, 200, "GET /v1/jobs -> 200")
        ids.add(hd.get("x-request-id"))
    c.check(None not in ids and len(ids) == 3, "X-Request-Id differs per request (got %r)" % ids)


def body(c):
    flags = tempfile.mkdtemp(prefix="reel-errors-flags-")
    go, fail = os.path.join(flags, "go"), os.path.join(flags, "fail")
    script = h.write_script(flags, "job.sh", """
        # Blocks until the test creates the go flag (at most 20 s); fails when the fail flag exists.
        if [ -f %(fail)s ]; then echo "failing on purpose" >&2; exit 3; fi
        i=0
        while [ ! -f %(go)s ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
        [ -f %(go)s ] || exit 4
        mkdir -p output
        head -c 4096 /dev/urandom > output/final_video.mp4
    """ % {"go": go, "fail": fail})
    try:
        with h.Reeld(service={"workers": 1, "max_body_bytes": 8192, "cancel_grace_seconds": 1,
                              "max_attempts": 1},
                     pipeline={"default_backend": "command", "command": [script]}) as r:
            check_open_endpoints(c, r)
            check_auth(c, r)
            check_not_found_and_methods(c, r)
            open(go, "w").close()  # let the acceptance-case jobs run through
            check_create_errors(c, r)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # drain them before the state checks
                pending = [j for st in ("queued", "started", "progress")
                           for j in (r.json("GET", "/v1/jobs?status=" + st)[2] or {}).get("jobs", [])]
                if not pending:
                    break
                time.sleep(0.1)
            os.unlink(go)
            check_job_states(c, r, flags)
            c.check(r.running(), "reeld still running after the error cases")

        # 429 with Retry-After: no workers, so jobs stay queued; depth 1.
        with h.Reeld(service={"workers": 0, "max_queue_depth": 1},
                     pipeline={"default_backend": "command", "command": [script]}) as r:
            codes = []
            last = None
            for i in range(3):
                last = r.request("POST", "/v1/jobs", body={"prompt": "queued %d" % i})
                codes.append(last[0])
            c.check(codes[0] == 202 and codes[-1] == 429,
                    "queue over max_queue_depth 1: first POST 202, later 429 (got %r)" % codes)
            if last[0] == 429:
                check_problem(c, "POST /v1/jobs with a full queue", last, 429, "/v1/jobs")
                ra = last[1].get("retry-after", "")
                c.check(ra.isdigit() and int(ra) >= 1, "429 carries Retry-After seconds (got %r)" % ra)

        # /readyz with the built-in renderer on a machine without ffmpeg (a PATH
        # that holds none of its programs): 503 not_ready, naming program and package.
        empty_bin = os.path.join(flags, "empty-bin")
        os.makedirs(empty_bin, exist_ok=True)
        with h.Reeld(service={"workers": 1}, pipeline={"default_backend": "local"},
                     env={"PATH": empty_bin}) as r:
            st, hd, ready = r.json("GET", "/readyz", token=False)
            c.eq(st, 503, "/readyz with default_backend local and no ffmpeg -> 503")
            c.eq((ready or {}).get("status"), "not_ready", "/readyz 503 body has status not_ready")
            workers = ((ready or {}).get("checks") or {}).get("workers", "")
            c.check("ffmpeg" in workers and "Debian package ffmpeg" in workers,
                    "/readyz names the missing program and its package (got %r)" % workers)
            c.check(bool(hd.get("x-request-id")), "/readyz 503 carries X-Request-Id")
            st, _, _ = r.request("GET", "/healthz", token=False)
            c.eq(st, 200, "/healthz is 200 even when not ready")
    finally:
        shutil.rmtree(flags, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
