#!/usr/bin/env python3
"""GET /metrics and the structured JSON log.

After a known set of requests and two command-backend jobs (one finished,
one failed by exit status) the test checks that GET /metrics
- needs no token and is `text/plain; version=0.0.4`,
- passes `promtool check metrics` (the Debian `prometheus` package; when
  promtool is missing this FAILS and says to run scripts/install-deps.sh --test),
- counts the requests made in reel_http_requests_total{route,status},
- has a consistent reel_http_request_duration_seconds histogram,
- has reel_jobs{status} gauges equal to the job counts the API reports,
  reel_queue_depth, reel_job_duration_seconds, reel_job_failures_total
  {reason="exit_status"} >= 1, process_resident_memory_bytes > 0 and a
  growing reel_uptime_seconds;
and that reeld's stderr log is one JSON object per line, with one "request"
line per request (method, route, status, duration_ms, protocol HTTP/1.1,
request_id equal to the X-Request-Id the client saw), "job transition" lines
for both jobs, and no line containing a token (right or wrong).
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

WRONG_TOKEN = "wrong-token-Zq9xV7mK2pL4"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """Returns {name: [(labels dict, float value)]}; raises ValueError on a bad line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError("unparsable metrics line %r" % line)
        labels = {}
        rest = m.group(3) or ""
        pos = 0
        while pos < len(rest):
            lm = LABEL.match(rest, pos)
            if not lm:
                raise ValueError("bad labels in %r" % line)
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        value = float(m.group(4).replace("+Inf", "inf").replace("-Inf", "-inf"))
        out.setdefault(m.group(1), []).append((labels, value))
    return out


def value(metrics, name, **labels):
    """The value of the one sample of name whose labels include `labels`, or None."""
    found = [v for lab, v in metrics.get(name, []) if all(lab.get(k) == w for k, w in labels.items())]
    return found[0] if len(found) == 1 else (None if not found else sum(found))


def find_promtool():
    return shutil.which("promtool") or ("/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None)


def check_histogram(c, metrics, name, labels, what):
    buckets = [(lab, v) for lab, v in metrics.get(name + "_bucket", [])
               if all(lab.get(k) == w for k, w in labels.items())]
    count = value(metrics, name + "_count", **labels)
    total = value(metrics, name + "_sum", **labels)
    if not c.check(buckets and count is not None and total is not None,
                   "%s: %s has _bucket, _sum and _count series" % (what, name)):
        return None
    bounds = []
    for lab, v in buckets:
        le = lab.get("le")
        bounds.append((math.inf if le == "+Inf" else float(le), v))
    bounds.sort()
    c.check(bounds[-1][0] == math.inf, "%s: a +Inf bucket exists" % what)
    c.check(all(a[1] <= b[1] for a, b in zip(bounds, bounds[1:])), "%s: buckets are cumulative" % what)
    c.eq(bounds[-1][1], count, "%s: the +Inf bucket equals _count" % what)
    c.check(total >= 0, "%s: _sum is not negative" % what)
    return count


def body(c):
    tmp = tempfile.mkdtemp(prefix="reel-metrics-")
    fail = os.path.join(tmp, "fail")
    script = h.write_script(tmp, "job.sh", """
        if [ -f %s ]; then echo "failing on purpose" >&2; exit 7; fi
        mkdir -p output && head -c 2000 /dev/urandom > output/final_video.mp4
    """ % fail)
    seen = []  # (method, route, status, request_id) for every request this test made

    def req(r, method, path, route, **kw):
        st, hd, payload = r.request(method, path, **kw)
        seen.append((method, route, st, hd.get("x-request-id")))
        return st, hd, payload

    try:
        with h.Reeld(service={"workers": 1, "max_attempts": 1},
                     pipeline={"default_backend": "command", "command": [script]}) as r:
            for _ in range(3):
                req(r, "GET", "/healthz", "GET /healthz", token=False)
            req(r, "GET", "/v1/jobs", "GET /v1/jobs")
            req(r, "GET", "/v1/jobs", "GET /v1/jobs", token=False)
            req(r, "GET", "/v1/jobs", "GET /v1/jobs", token=WRONG_TOKEN)
            req(r, "POST", "/v1/jobs", "POST /v1/jobs", body={"prompt": ""})
            req(r, "GET", "/v1/nope", None)
            for i in range(5):  # unknown paths must not each become a label value
                req(r, "GET", "/v1/unknown-%d" % i, None)
            req(r, "GET", "/v1/jobs/job_01M7ZSKM4R131V6P5546T7DNM4", "GET /v1/jobs/{id}")
            st, _, p1 = req(r, "POST", "/v1/jobs", "POST /v1/jobs", body={"prompt": "this one works"})
            j1 = json.loads(p1)["id"] if st == 202 else None
            if j1:
                r.wait_job(j1, "finished", timeout=30)
            open(fail, "w").close()
            st, _, p2 = req(r, "POST", "/v1/jobs", "POST /v1/jobs", body={"prompt": "this one fails"})
            j2 = json.loads(p2)["id"] if st == 202 else None
            if j2:
                r.wait_job(j2, "failed", timeout=30)
            if not c.check(j1 and j2, "both jobs were accepted"):
                return
            req(r, "GET", "/v1/jobs/" + j1, "GET /v1/jobs/{id}")
            counts = {}
            for status in ("queued", "started", "progress", "finished", "failed", "canceled"):
                _, _, page = r.json("GET", "/v1/jobs?limit=100&status=" + status)
                counts[status] = len((page or {}).get("jobs", []))
            c.eq((counts["finished"], counts["failed"]), (1, 1), "the API lists one finished and one failed job")

            # -- /metrics --
            st, hd, raw = req(r, "GET", "/metrics", "GET /metrics", token=False)
            c.eq(st, 200, "GET /metrics without a token -> 200")
            ctype = hd.get("content-type", "")
            c.check(ctype.startswith("text/plain") and "version=0.0.4" in ctype.replace(" ", ""),
                    "Content-Type is text/plain; version=0.0.4 (got %r)" % ctype)
            text = raw.decode("utf-8", "replace")
            c.check(text.endswith("\n"), "the exposition ends with a newline")
            promtool = find_promtool()
            if promtool:
                p = subprocess.run([promtool, "check", "metrics"], input=raw, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=30)
                c.check(p.returncode == 0, "promtool check metrics passes (exit %d)\n%s"
                        % (p.returncode, p.stdout.decode("utf-8", "replace")[-2000:]))
            else:
                c.fail("promtool is not installed: run scripts/install-deps.sh --test "
                       "(Debian package prometheus) so /metrics can be linted")
            try:
                m = parse_metrics(text)
            except ValueError as e:
                c.fail("the exposition parses: %s" % e)
                return

            # requests
            c.check("reel_http_requests_total" in m, "reel_http_requests_total is exported")
            c.check(all("route" in lab and "status" in lab for lab, _ in m.get("reel_http_requests_total", [])),
                    "every reel_http_requests_total sample has route and status labels")
            expect = {}
            for method, route, st, _ in seen:
                if route and route != "GET /metrics":
                    expect[(route, str(st))] = expect.get((route, str(st)), 0) + 1
            for (route, status), n in sorted(expect.items()):
                got = value(m, "reel_http_requests_total", route=route, status=status)
                if status == "200":  # the harness also polls /healthz and the jobs while waiting
                    c.check(got is not None and got >= n,
                            "reel_http_requests_total{route=%r,status=%r} >= %d (got %r)" % (route, status, n, got))
                else:
                    c.eq(got, float(n), "reel_http_requests_total{route=%r,status=%r}" % (route, status))
            c.check(any(lab.get("status") == "404" and v >= 1 for lab, v in m.get("reel_http_requests_total", [])),
                    "the unknown path is counted with status 404")
            c.check(any(lab.get("status") == "401" for lab, v in m.get("reel_http_requests_total", [])),
                    "401s are counted")
            routes = {lab.get("route", "") for lab, _ in m.get("reel_http_requests_total", [])}
            c.check(not [x for x in routes if "unknown-" in x or "nope" in x or "job_" in x],
                    "route labels are route templates, never raw paths or job ids (got %r)" % sorted(routes))
            for route in ("GET /healthz", "GET /v1/jobs", "POST /v1/jobs"):
                n = check_histogram(c, m, "reel_http_request_duration_seconds", {"route": route},
                                    "duration of %s" % route)
                total = sum(v for lab, v in m.get("reel_http_requests_total", []) if lab.get("route") == route)
                if n is not None:
                    c.eq(n, total, "histogram count for %s equals its reel_http_requests_total sum" % route)

            # jobs
            for status in ("queued", "started", "progress", "finished", "failed", "canceled"):
                c.eq(value(m, "reel_jobs", status=status), float(counts[status]),
                     "reel_jobs{status=%r} matches the API's count" % status)
            c.eq(value(m, "reel_queue_depth"), float(counts["queued"]), "reel_queue_depth equals the queued jobs")
            fin = check_histogram(c, m, "reel_job_duration_seconds", {"status": "finished"}, "job duration (finished)")
            fld = check_histogram(c, m, "reel_job_duration_seconds", {"status": "failed"}, "job duration (failed)")
            c.eq((fin, fld), (1.0, 1.0), "reel_job_duration_seconds counts one finished and one failed job")
            ex = value(m, "reel_job_failures_total", reason="exit_status")
            c.check(ex is not None and ex >= 1, "reel_job_failures_total{reason=\"exit_status\"} >= 1 (got %r)" % ex)
            rss = value(m, "process_resident_memory_bytes")
            c.check(rss is not None and rss > 0, "process_resident_memory_bytes > 0 (got %r)" % rss)
            up1 = value(m, "reel_uptime_seconds")
            c.check(up1 is not None and up1 > 0, "reel_uptime_seconds > 0 (got %r)" % up1)
            time.sleep(0.3)
            _, _, raw2 = req(r, "GET", "/metrics", "GET /metrics", token=False)
            up2 = value(parse_metrics(raw2.decode("utf-8", "replace")), "reel_uptime_seconds")
            c.check(up1 is not None and up2 is not None and up2 >= up1 + 0.25,
                    "reel_uptime_seconds grows (%r then %r)" % (up1, up2))
            m2 = parse_metrics(raw2.decode("utf-8", "replace"))
            c.eq(value(m2, "reel_http_requests_total", route="GET /metrics", status="200"), 1.0,
                 "the first /metrics scrape is counted by the second")
            st, _, _ = r.request("GET", "/metrics", token=WRONG_TOKEN)
            c.eq(st, 200, "GET /metrics with a wrong token is still 200 (no auth on metrics)")
            seen.append(("GET", "GET /metrics", st, None))

            # -- the structured log --
            time.sleep(0.2)
            lines = [l for l in r.log_text().splitlines() if l and not l.startswith("--- reelharness")]
            objs, bad = [], []
            for line in lines:
                try:
                    o = json.loads(line)
                    (objs if isinstance(o, dict) else bad).append(o if isinstance(o, dict) else line)
                except ValueError:
                    bad.append(line)
            c.check(lines and not bad, "every log line is one JSON object (%d lines, %d not: %r)"
                    % (len(lines), len(bad), bad[:3]))
            c.check(all("ts" in o and "level" in o and "msg" in o for o in objs),
                    "every log object has ts, level and msg")
            requests = {}
            for o in objs:
                if o.get("msg") == "request":
                    requests.setdefault(o.get("request_id"), []).append(o)
            for method, route, st, rid in seen:
                if rid is None:
                    continue
                got = requests.get(rid, [])
                if not c.eq(len(got), 1, "one request log line for %s %s (request_id %s)" % (method, route, rid)):
                    continue
                o = got[0]
                c.eq((o.get("method"), o.get("status")), (method, st),
                     "request line %s: method and status" % rid)
                if route:
                    c.eq(o.get("route"), route, "request line %s: route" % rid)
                else:
                    c.check(isinstance(o.get("route"), str) and o.get("route"), "request line %s: has a route" % rid)
                c.eq(o.get("protocol"), "HTTP/1.1", "request line %s: protocol" % rid)
                d = o.get("duration_ms")
                c.check(isinstance(d, (int, float)) and not isinstance(d, bool) and 0 <= d < 10000,
                        "request line %s: duration_ms is a number (got %r)" % (rid, d))
            trans = [o for o in objs if o.get("msg") == "job transition"]
            for jid, final in ((j1, "finished"), (j2, "failed")):
                mine = [o for o in trans if o.get("job_id") == jid]
                c.check(mine and all("from" in o and "to" in o for o in mine),
                        "job transition lines for %s with from and to (%d)" % (jid, len(mine)))
                if mine:
                    c.eq(mine[0].get("from"), "queued", "the first transition of %s leaves queued" % jid)
                    c.eq(mine[-1].get("to"), final, "the last transition of %s is to %s" % (jid, final))
                    c.check(all(a.get("to") == b.get("from") for a, b in zip(mine, mine[1:])),
                            "the transitions of %s chain (%s)"
                            % (jid, " ".join("%s->%s" % (o.get("from"), o.get("to")) for o in mine)))
            text = r.log_text()
            c.check(h.TOKEN not in text, "no log line contains the bearer token")
            c.check(WRONG_TOKEN not in text, "no log line contains a wrong token a client sent")
            c.check("Bearer" not in text, "no log line contains an Authorization value")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
