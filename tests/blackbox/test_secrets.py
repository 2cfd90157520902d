"""Configured secrets never reach a log, in any form (issue 9, "Secrets").

A command-backend pipeline prints every configured secret (two auth tokens,
the URL signing key) glued to words, percent-encoded (lower, upper and mixed
hex, twice over), behind "Bearer%20", "Authorization%3A%20Bearer%20",
"Bearer_", and on lines cut at service.max_log_line_bytes at every offset
through the secret; and requests carry the token in their path, raw,
percent-encoded, after "Bearer%20", across the access log's 511-byte cut and
as the method. Then GET /v1/jobs/{id}/logs, the job's error, every file in
data_dir (the SQLite database and its WAL) and everything reeld wrote (its
own log lines and the access log) must hold no secret, raw or encoded, and
no cut may keep the start of one.
"""

import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

TOKEN2 = "Rl9-sEcReT-t0k3n-4xQ"       # service.auth.tokens[1]
SIGNING_KEY = "Uq3-s1gn1ng-KeY-77wv"   # service.signing_key
SECRETS = [h.TOKEN, TOKEN2, SIGNING_KEY]
UNREGISTERED_SIG = "d34db33fcafe0123"   # a signature value nobody registered
MAX_LINE = 100                          # service.max_log_line_bytes
PREFIX = 6                              # no run of this many leading bytes of a secret may survive


def pct(s, upper=False):
    """Every byte of s percent-encoded."""
    return "".join(("%%%02X" if upper else "%%%02x") % b for b in s.encode())


def mixed(s):
    return "".join(("%%%02X" if i % 2 else "%%%02x") % b for i, b in enumerate(s.encode()))


def encodings(secret):
    """The forms of secret a log must not hold."""
    return [secret, pct(secret), pct(secret, upper=True), mixed(secret),
            urllib.parse.quote(secret, safe=""), pct(pct(secret, upper=True))]


def pipeline_lines():
    lines = []
    for s in SECRETS:
        lines += [
            "X-" + s, "abc" + s, "1" + s, "sig." + s,
            "url=https://h/p?auth=Bearer%20" + s,
            "Authorization%3A%20Bearer%20" + s,
            "header:Bearer_" + s,
            s + " at the start", "at the end " + s, "twice " + s + s + " and " + s,
            "lower " + pct(s), "upper " + pct(s, upper=True), "mixed " + mixed(s),
            "twice encoded " + pct(pct(s)), "part " + s[:3] + pct(s[3:6]) + s[6:],
            "json {\"Authorization\": \"Bearer " + s + "\"}",
        ]
        # cut at max_log_line_bytes at every offset through the secret, plain and encoded
        for k in range(len(s) + 1):
            lines.append("." * (MAX_LINE - k) + s + " tail")
        enc = pct(s, upper=True)
        for k in range(0, len(enc) + 1, 2):
            lines.append("," * (MAX_LINE - k) + enc + " tail")
    lines += ["next=%2Fdl%3Fsignature%3D" + UNREGISTERED_SIG + "%26expires%3D1",
              "u=X-Amz-Signature%3d" + UNREGISTERED_SIG,
              "ordinary line: rendering keyframe 3 of 5"]
    return lines


PIPELINE = """\
#!/usr/bin/env python3
import json, sys
lines = json.load(open(sys.argv[1], encoding="utf-8"))
for i, line in enumerate(lines):
    print(line, file=sys.stderr if i % 2 else sys.stdout, flush=True)
print("last words: " + lines[0], file=sys.stderr, flush=True)
sys.exit(3)
"""


def fully_decoded(text):
    for _ in range(4):
        text = urllib.parse.unquote(text)
    return text


def leaks(text, where, tmp=None):
    """The secrets (or their encodings, or a leading piece) found in text
    (with tmp, the test's own directory name, which may hold anything, left out)."""
    found = []
    if tmp:
        text = text.replace(tmp, "TMP")
    decoded = fully_decoded(text)
    for s in SECRETS:
        for form in encodings(s):
            if form in text:
                found.append("%s holds %r" % (where, form))
        if s in decoded:
            found.append("%s holds %r once percent-decoded" % (where, s))
        if s[:PREFIX] in decoded:
            found.append("%s holds the first %d bytes of a secret (%r)" % (where, PREFIX, s[:PREFIX]))
    if UNREGISTERED_SIG in decoded:
        found.append("%s holds the unregistered signature value" % where)
    return found


def body(c):
    service = {
        "workers": 1,
        "max_attempts": 1,
        "max_log_line_bytes": MAX_LINE,
        "signing_key": SIGNING_KEY,
        "auth": {"tokens": [h.TOKEN, TOKEN2]},
    }
    with h.Reeld(start=False, service=service) as r:
        lines_path = os.path.join(r.tmp, "lines.json")
        with open(lines_path, "w", encoding="utf-8") as f:
            json.dump(pipeline_lines(), f)
        script = h.write_script(r.tmp, "pipeline.py", PIPELINE)
        r.config = h.merge(r.config, {"pipeline": {"default_backend": "command", "command": [script, lines_path]}})
        r.start()

        # 1. the pipeline prints every form; the job log and the job's error hold none
        status, _, job = r.json("POST", "/v1/jobs", {"prompt": "a lighthouse at dawn"})
        if not c.eq(status, 202, "POST /v1/jobs answers 202"):
            return
        job = r.wait_job(job["id"], "failed", timeout=60)
        status, _, logs = r.json("GET", "/v1/jobs/%s/logs?tail=10000" % job["id"])
        c.eq(status, 200, "GET .../logs answers 200")
        got = logs.get("lines", []) if isinstance(logs, dict) else []
        c.check(len(got) >= len(pipeline_lines()), "the log kept every line (%d)" % len(got))
        c.check("X-[REDACTED]" in got, "X-<token> is logged as X-[REDACTED]")
        c.check("url=https://h/p?auth=Bearer%20[REDACTED]" in got, "Bearer%20<token> in a URL is redacted")
        c.check("ordinary line: rendering keyframe 3 of 5" in got, "an ordinary line is kept as it is")
        log_leaks = [x for i, line in enumerate(got) for x in leaks(line, "log line %d %r" % (i, line[-40:]))]
        c.check(not log_leaks, "GET .../logs holds no secret: %s" % log_leaks[:5])
        cut_lines = [line for line in got if line[:1] in (".", ",")]
        c.check(len(cut_lines) >= 60, "the lines cut at max_log_line_bytes are logged (%d)" % len(cut_lines))
        cut_leaks = [line for line in cut_lines if any(
            fully_decoded(line).endswith(s[:j]) for s in SECRETS for j in range(1, len(s) + 1))]
        c.check(not cut_leaks, "no cut line ends with the start of a secret: %r" % cut_leaks[:3])
        too_long = [line for line in got if len(line.encode()) > MAX_LINE]
        c.check(not too_long, "every line is at most max_log_line_bytes: %r" % too_long[:2])
        c.check(not leaks(json.dumps(job), "the job"), "the job's error holds no secret: %r" % job.get("error"))

        # 2. requests with a secret in the path (and as the method)
        paths = ["/v1/jobs/Bearer%20" + TOKEN2, "/v1/jobs/" + TOKEN2, "/v1/jobs/x" + TOKEN2 + "y",
                 "/v1/jobs/" + pct(TOKEN2, upper=True), "/v1/jobs/" + pct(TOKEN2),
                 "/v1/jobs/Authorization%3A%20Bearer%20" + TOKEN2,
                 "/v1/jobs/" + pct(pct(TOKEN2)), "/v1/files/j/" + SIGNING_KEY + ".mp4"]
        for k in range(0, len(TOKEN2) + 1):  # the access log keeps 511 bytes of a path
            paths.append("/v1/jobs/" + "a" * (511 - len("/v1/jobs/") - k) + TOKEN2)
        for p in paths:
            status, _, _ = r.request("GET", p)
            c.check(status in (400, 403, 404), "GET %s... answers %d" % (p[:40], status))
        status, _, _ = r.request(TOKEN2, "/v1/jobs")
        c.check(status >= 400, "a request whose method is the token answers %d" % status)

        status, _, _ = r.request("GET", "/healthz", token=False)  # the last line, to know all are written
        h.wait_for(lambda: '"path":"/healthz"' in r.log_text(), 5)
        text = r.log_text()
        access = [json.loads(line) for line in text.splitlines()
                  if line.startswith("{") and '"msg":"request"' in line]
        jobs_lines = [a for a in access if str(a.get("path", "")).startswith("/v1/jobs/")]
        c.check(len(jobs_lines) >= len(paths) - 1, "every request has an access-log line (%d)" % len(jobs_lines))
        c.check(any(a.get("path") == "/v1/jobs/Bearer%20[REDACTED]" for a in access),
                "GET /v1/jobs/Bearer%20<token> is logged as /v1/jobs/Bearer%20[REDACTED]")
        whole = sum(1 for a in access if a.get("path") == "/v1/jobs/[REDACTED]")
        c.eq(whole, 4, "the token in the path raw, percent-encoded (upper, lower hex) and twice encoded "
                       "is logged as /v1/jobs/[REDACTED]")
        access_leaks = [x for a in access for x in leaks(json.dumps(a), "access line %s" % a.get("path", "")[-30:], r.tmp)]
        c.check(not access_leaks, "the access log holds no secret: %s" % access_leaks[:5])
        cut = [a["path"] for a in access if len(str(a.get("path", ""))) > 400]
        cut_leaks = [p for p in cut if any(fully_decoded(p).endswith(TOKEN2[:j]) for j in range(1, len(TOKEN2) + 1))]
        c.check(cut and not cut_leaks, "a path cut at 511 bytes keeps no start of the token: %r" % [p[-30:] for p in cut_leaks[:3]])
        c.check(all(len(p.encode()) <= 511 for p in cut), "the logged path is at most 511 bytes")

        # 3. everything reeld wrote, and every file in data_dir
        all_leaks = leaks(text, "reeld's output", r.tmp)
        c.check(not all_leaks, "reeld's log and stderr hold no secret: %s" % all_leaks[:5])
        r.stop()
        files = []
        for root, _, names in os.walk(r.data_dir):
            files += [os.path.join(root, n) for n in names]
        c.check(any(f.endswith(".db") for f in files), "data_dir holds the SQLite database: %s" % files)
        for path in files:
            with open(path, "rb") as f:
                data = f.read().decode("latin-1")
            name = os.path.relpath(path, r.data_dir)
            found = leaks(data, name, r.tmp)
            c.check(not found, "%s holds no secret: %s" % (name, found[:3]))


if __name__ == "__main__":
    raise SystemExit(h.run(body))
