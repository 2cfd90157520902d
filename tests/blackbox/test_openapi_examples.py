#!/usr/bin/env python3
"""Every response example in openapi.yaml is what a real reeld sends.

For each operation, status and example (`examples` or `example` of a response
body), the test produces that response from real reelds (a command pipeline
that finishes, fails or keeps running as its prompt says; a second server
with no workers and a queue of one) and compares:

- the status code and the Content-Type;
- for JSON: the shape, recursively: the same keys in every object and the
  same JSON type for every value (null matches anything, since the example
  shows one state of a nullable field; every number matches every number);
- for problem bodies, also `type`, `title` and `status` exactly, `detail`
  and `instance` after job ids and numbers are normalised, and a
  `request_id` equal to the X-Request-Id header;
- for /metrics: every `# HELP`/`# TYPE` line of the example is served as it
  is, and every sample's metric name and label names are served.

An example with no way to produce it here is a failure: remove it from the
document or teach this test to produce it.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402
import test_openapi as oa  # noqa: E402

PIPELINE = """#!/bin/sh
# $1: the effective config, $2: the prompt
case "$2" in
  fail*) echo "plan: 4 scenes, 16.0 s"; echo "keyframes: image model returned no image" >&2; exit 1 ;;
  slow*) echo "REEL_PROGRESS 60 stitch"; sleep 60; exit 0 ;;
esac
echo "REEL_PROGRESS 20 keyframes"
echo "REEL_COST plan 0.001"
echo "REEL_COST generation 3.1"
printf 'video' > output/final_video.mp4
printf 'WEBVTT\\n' > output/captions.vtt
"""

JOB_ID = re.compile(r"job_[0-9A-Z]{26}")
NUMBER = re.compile(r"[0-9]+")
BIG_HEADER = {"X-Padding": "x" * 20000}


def normalise(text):
    return NUMBER.sub("N", JOB_ID.sub("JOB", text)) if isinstance(text, str) else text


def kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def shape_errors(example, real, where="$"):
    """Differences in keys and types between an example and a real value."""
    if example is None or real is None:
        return []
    if kind(example) != kind(real):
        return ["%s: the example has %s, the server sent %s (%r)" % (where, kind(example), kind(real), real)]
    errors = []
    if isinstance(example, dict):
        missing, extra = sorted(set(example) - set(real)), sorted(set(real) - set(example))
        if missing:
            errors.append("%s: the server does not send %s" % (where, ", ".join(missing)))
        if extra:
            errors.append("%s: the example lacks %s" % (where, ", ".join(extra)))
        for key in sorted(set(example) & set(real)):
            errors += shape_errors(example[key], real[key], "%s.%s" % (where, key))
    elif isinstance(example, list):
        if bool(example) != bool(real):
            errors.append("%s: the example has %d items, the server sent %d" % (where, len(example), len(real)))
        for i, item in enumerate(example):
            if real:
                errors += shape_errors(item, real[0], "%s[%d]" % (where, i))
    return errors


class Servers:
    """Two reelds and the jobs the examples need, made once."""

    def __init__(self, c):
        self.c = c
        # One webhook endpoint that refuses connections: its deliveries stay pending with attempts.
        hook = {"url": "http://127.0.0.1:9/hook", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
        self.main = h.Reeld(start=False, service={"workers": 1, "max_attempts": 1, "cancel_grace_seconds": 1,
                                                  "webhooks": [hook]})
        script = h.write_script(self.main.tmp, "pipe.sh", PIPELINE)
        self.main.config["pipeline"] = {"default_backend": "command", "command": [script, "{config}", "{prompt}"]}
        self.main.start()
        self.idle = h.Reeld(service={"workers": 0, "max_queue_depth": 1})
        r = self.main
        self.finished = self.submit(r, "A lighthouse on a cliff at dawn")
        r.wait_job(self.finished, "finished", timeout=60)
        self.failed = self.submit(r, "fail: a storm")
        r.wait_job(self.failed, "failed", timeout=60)
        self.progress = None  # started on demand (it holds the only worker)
        self.queued = self.submit(self.idle, "waiting for a worker")
        status, _, link = r.json("GET", "/v1/jobs/%s/artifact" % self.finished)
        self.download = link["url"][link["url"].index("/v1/files/"):]

    def submit(self, r, prompt):
        status, _, job = r.json("POST", "/v1/jobs", {"prompt": prompt})
        if status != 202:
            raise h.ReeldError("POST /v1/jobs answered %d" % status)
        return job["id"]

    def reused_key(self):
        """The answer to a second request with one Idempotency-Key and another body."""
        key = {"Idempotency-Key": "examples-reused"}
        self.main.request("POST", "/v1/jobs", body={"prompt": "first body"}, headers=key)
        return self.main.request("POST", "/v1/jobs", body={"prompt": "second body"}, headers=key)

    def gone_file(self):
        """A valid download URL of a job whose artifact was removed from storage."""
        job_id = self.submit(self.main, "A lighthouse, soon gone")
        job = self.main.wait_job(job_id, "finished", timeout=60)
        status, _, link = self.main.json("GET", "/v1/jobs/%s/artifact" % job_id)
        key = re.sub(r"^(reel-local:|file:///)", "", job["artifact_uri"])
        os.unlink(os.path.join(self.main.data_dir, "artifacts", key))
        return self.main.request("GET", link["url"][link["url"].index("/v1/files/"):], token=False)

    def running_job(self):
        if not self.progress:
            self.progress = self.submit(self.main, "slow: rendering for a while")
            self.main.wait_job(self.progress, "progress", timeout=30)
        return self.progress

    def close(self):
        for r in (self.main, self.idle):
            r.close()


def concrete(path, job_id, name="final_video.mp4"):
    return path.replace("{id}", job_id).replace("{name}", name).replace("{asset}", "swagger-ui.css")


def generic(s, method, path, code):
    """A request that makes `code` at any operation (401, 404 of a job, 431)."""
    unknown = "job_01JD8X3QZ4N5P6R7S8T9V0W1XZ"
    if code == "401":
        return s.main.request(method, concrete(path, s.finished), token=False)
    if code == "404":
        return s.main.request(method, concrete(path, unknown))
    if code == "431":
        return s.main.request(method, concrete(path, s.finished), headers=BIG_HEADER)
    return None


def scenario(s, method, path, code, name):
    """Produces the real response for one documented example, or None if unknown."""
    r = s.main
    key = (method, path, code, name)
    files = s.download.split("?")[0]
    table = {
        ("POST", "/v1/jobs", "202", "queued"): lambda: r.request("POST", "/v1/jobs", body={"prompt": "a red fox"}),
        ("POST", "/v1/jobs", "400", "invalidJson"): lambda: r.request(
            "POST", "/v1/jobs", raw_body='{"prompt": "a"}}', headers={"Content-Type": "application/json"}),
        ("POST", "/v1/jobs", "400", "unknownField"): lambda: r.request(
            "POST", "/v1/jobs", body={"prompt": "a", "backend": "veo"}),
        ("POST", "/v1/jobs", "400", "emptyPrompt"): lambda: r.request("POST", "/v1/jobs", body={"prompt": "  "}),
        ("POST", "/v1/jobs", "400", "tooLong"): lambda: r.request("POST", "/v1/jobs", body={"prompt": "x" * 2417}),
        ("POST", "/v1/jobs", "413", "tooLarge"): lambda: r.request(
            "POST", "/v1/jobs", raw_body="x" * 70000, headers={"Content-Type": "application/json"}),
        ("POST", "/v1/jobs", "415", "form"): lambda: r.request(
            "POST", "/v1/jobs", raw_body="prompt=a", headers={"Content-Type": "application/x-www-form-urlencoded"}),
        ("POST", "/v1/jobs", "400", "badIdempotencyKey"): lambda: r.request(
            "POST", "/v1/jobs", body={"prompt": "a"}, headers={"Idempotency-Key": "k" * 256}),
        ("POST", "/v1/jobs", "422", "reused"): lambda: s.reused_key(),
        ("GET", "/v1/jobs/{id}/events", "200", "progress"): lambda: r.request(
            "GET", "/v1/jobs/%s/events" % s.finished),
        ("GET", "/v1/jobs/{id}/events", "400", "types"): lambda: r.request(
            "GET", "/v1/jobs/%s/events?types=job.done" % s.finished),
        ("GET", "/v1/events", "400", "types"): lambda: r.request("GET", "/v1/events?types=job.done"),
        ("GET", "/v1/webhooks/deliveries", "200", "retrying"): lambda: r.request(
            "GET", "/v1/webhooks/deliveries?limit=1"),
        ("GET", "/v1/webhooks/deliveries", "400", "limit"): lambda: r.request(
            "GET", "/v1/webhooks/deliveries?limit=1000"),
        ("POST", "/v1/jobs", "429", "full"): lambda: s.idle.request("POST", "/v1/jobs", body={"prompt": "one more"}),
        ("GET", "/v1/jobs", "200", "page"): lambda: r.request("GET", "/v1/jobs?limit=2"),
        ("GET", "/v1/jobs", "200", "last"): lambda: r.request("GET", "/v1/jobs?status=canceled&limit=1")
        if not s.progress else None,
        ("GET", "/v1/jobs", "400", "limit"): lambda: r.request("GET", "/v1/jobs?limit=500"),
        ("GET", "/v1/jobs", "400", "status"): lambda: r.request("GET", "/v1/jobs?status=running"),
        ("GET", "/v1/jobs/{id}", "200", "queued"): lambda: s.idle.request("GET", "/v1/jobs/" + s.queued),
        ("GET", "/v1/jobs/{id}", "200", "progress"): lambda: r.request("GET", "/v1/jobs/" + s.running_job()),
        ("GET", "/v1/jobs/{id}", "200", "finishedLocal"): lambda: r.request("GET", "/v1/jobs/" + s.finished),
        ("GET", "/v1/jobs/{id}", "200", "finishedGcs"): lambda: r.request("GET", "/v1/jobs/" + s.finished),
        ("GET", "/v1/jobs/{id}", "200", "failed"): lambda: r.request("GET", "/v1/jobs/" + s.failed),
        ("GET", "/v1/jobs/{id}/artifact", "200", "local"): lambda: r.request(
            "GET", "/v1/jobs/%s/artifact" % s.finished),
        ("GET", "/v1/jobs/{id}/artifact", "200", "gcs"): lambda: r.request(
            "GET", "/v1/jobs/%s/artifact" % s.finished),
        ("GET", "/v1/jobs/{id}/artifact", "400", "expiresIn"): lambda: r.request(
            "GET", "/v1/jobs/%s/artifact?expires_in=30" % s.finished),
        ("GET", "/v1/jobs/{id}/artifact", "404", "notReady"): lambda: s.idle.request(
            "GET", "/v1/jobs/%s/artifact" % s.queued),
        ("GET", "/v1/jobs/{id}/logs", "200", "failed"): lambda: r.request("GET", "/v1/jobs/%s/logs" % s.failed),
        ("GET", "/v1/jobs/{id}/logs", "400", "tail"): lambda: r.request(
            "GET", "/v1/jobs/%s/logs?tail=-5" % s.finished),
        ("POST", "/v1/jobs/{id}/cancel", "200", "ok"): lambda: s.idle.request("POST", "/v1/jobs/%s/cancel" % s.queued),
        ("POST", "/v1/jobs/{id}/cancel", "409", "finished"): lambda: r.request(
            "POST", "/v1/jobs/%s/cancel" % s.finished),
        ("GET", "/v1/files/{id}/{name}", "403", "badSignature"): lambda: r.request(
            "GET", files + "?expires=%d&signature=%s" % (time.time() + 600, "0" * 64), token=False),
        ("GET", "/v1/files/{id}/{name}", "404", "gone"): lambda: s.gone_file(),
        ("GET", "/v1/files/{id}/{name}", "416", "pastEnd"): lambda: r.request(
            "GET", s.download, headers={"Range": "bytes=9999999-"}, token=False),
        ("GET", "/healthz", "200", "ok"): lambda: r.request("GET", "/healthz", token=False),
        ("GET", "/readyz", "200", "ready"): lambda: r.request("GET", "/readyz", token=False),
        ("GET", "/readyz", "503", "noWorkers"): lambda: s.idle.request("GET", "/readyz", token=False),
        ("GET", "/metrics", "200", "sample"): lambda: r.request("GET", "/metrics", token=False),
        ("GET", "/docs/{asset}", "404", "asset"): lambda: r.request("GET", "/docs/index.js", token=False),
    }
    if key in table:
        return table[key]()
    if name in ("missing", "tooLarge", "unknown") and code in ("401", "404", "431"):
        return generic(s, method, path, code)
    return None


def compare(c, label, media_type, value, real, path):
    status, headers, payload = real
    got_type = headers.get("content-type", "").split(";")[0].strip()
    want_type = media_type.split(";")[0].strip()
    c.eq(got_type, want_type, "%s: Content-Type" % label)
    text = payload.decode("utf-8", "replace")
    if want_type == "text/event-stream":
        compare_event_stream(c, label, str(value), text)
        return
    if want_type == "text/plain":
        served = text.splitlines()
        samples = {(m.group(1), tuple(sorted(re.findall(r'([a-z_]+)="', m.group(2) or ""))))
                   for m in (re.match(r"([a-z_:]+)(\{.*\})? ", l) for l in served if not l.startswith("#")) if m}
        bad = []
        for line in str(value).splitlines():
            if line.startswith("#"):
                if line not in served:
                    bad.append("not served: %r" % line)
                continue
            m = re.match(r"([a-z_:]+)(\{.*\})? ", line)
            sig = (m.group(1), tuple(sorted(re.findall(r'([a-z_]+)="', m.group(2) or "")))) if m else None
            if sig not in samples:
                bad.append("no such sample: %r" % line)
        c.check(not bad, "%s: every line matches what the server sends%s" % (label, "".join("\n    " + b for b in bad)))
        return
    try:
        import json
        body = json.loads(text)
    except ValueError:
        c.fail("%s: the server sent JSON (got %r)" % (label, text[:200]))
        return
    errors = shape_errors(value, body)
    c.check(not errors, "%s: same keys and types%s" % (label, "".join("\n    " + e for e in errors)))
    if want_type == "application/problem+json" and isinstance(value, dict) and isinstance(body, dict):
        for field in ("type", "title", "status"):
            c.eq(body.get(field), value.get(field), "%s: %s" % (label, field))
        c.eq(normalise(body.get("detail")), normalise(value.get("detail")), "%s: detail (normalised)" % label)
        template = "^" + re.sub(r"\\\{[a-z]+\\\}", "[^/]+", re.escape(path)) + "$"
        if re.match(template, str(value.get("instance"))):
            c.eq(normalise(body.get("instance")), normalise(value.get("instance")), "%s: instance" % label)
        c.eq(body.get("request_id"), headers.get("x-request-id"), "%s: request_id is the X-Request-Id" % label)


def sse_records(text):
    """The records of a text/event-stream: a dict of field -> value per blank-line-ended block."""
    records = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            if line and not line.startswith(":") and ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        if fields:
            records.append(fields)
    return records


def compare_event_stream(c, label, example, text):
    """The stream starts as the example does (retry), and every example event has a served event of its
    type with the same fields and the same data shape."""
    import json
    want, got = sse_records(example), sse_records(text)
    c.check(bool(got) and set(got[0]) == {"retry"}, "%s: the stream starts with retry: (got %r)" % (label, got[:1]))
    for record in want[1:]:
        same = [g for g in got if g.get("event") == record.get("event")]
        if not c.check(bool(same), "%s: the server sends a %s event" % (label, record.get("event"))):
            continue
        c.eq(sorted(same[0]), sorted(record), "%s: %s has the fields of the example" % (label, record.get("event")))
        try:
            served, shown = json.loads(same[0]["data"]), json.loads(record["data"])
        except (KeyError, ValueError) as e:
            c.fail("%s: %s data is JSON (%s)" % (label, record.get("event"), e))
            continue
        errors = shape_errors(shown, served)
        c.check(not errors, "%s: %s data has the example's keys and types%s"
                % (label, record.get("event"), "".join("\n    " + e for e in errors)))
        c.eq(str(served.get("id")), same[0].get("id"), "%s: the data's id is the event's id" % label)


def examples_of(doc):
    """(method, path, status, media type, example name, value) for every response example."""
    out = []
    for (method, path), op in sorted(oa.document_operations(doc).items()):
        for code, response in sorted((op.get("responses") or {}).items()):
            response = oa.resolve(doc, response)
            for media_type, media in sorted((response.get("content") or {}).items()):
                if "example" in media:
                    out.append((method, path, code, media_type, "example", media["example"]))
                for name, example in sorted((media.get("examples") or {}).items()):
                    example = oa.resolve(doc, example)
                    if "value" in example:
                        out.append((method, path, code, media_type, name, example["value"]))
    return out


def body(c):
    if not oa.check_tools(c):
        return
    doc = oa.load_document(c)
    if doc is None:
        return
    examples = examples_of(doc)
    c.check(len(examples) > 30, "openapi.yaml has response examples (%d)" % len(examples))
    s = Servers(c)
    try:
        # the progress job holds the only worker: produce everything else first
        examples.sort(key=lambda e: e[4] == "progress")
        for method, path, code, media_type, name, value in examples:
            label = "%s %s -> %s %s" % (method, path, code, name)
            real = scenario(s, method, path, code, name)
            if real is None:
                c.fail("%s: this test cannot produce the example (remove it or add a scenario)" % label)
                continue
            if not c.eq(real[0], int(code), "%s: status" % label):
                print("    body: %s" % real[2][:300].decode("utf-8", "replace"))
                continue
            compare(c, label, media_type, value, real, path)
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(h.run(body))
