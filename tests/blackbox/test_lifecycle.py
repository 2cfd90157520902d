#!/usr/bin/env python3
"""A job's life as a client sees it, with the command backend.

1. Lifecycle: POST /v1/jobs answers 202 with {id, status: queued, created_at}
   and a Location header; polling sees the progress and stage the pipeline
   reports (REEL_PROGRESS lines), never going backwards, and ends finished at
   100 with created_at <= started_at <= finished_at, all RFC 3339 UTC ('Z').
   artifact_uri is a reel-local: URI that does not reveal data_dir. The job log
   holds the script's lines but not the secrets it printed (`token=...`,
   `Authorization: Bearer <the service token>`). The script gets the effective
   config ({config}): the HTTP prompt replaces pipeline.prompt and every other
   pipeline key is passed through unchanged; {prompt} and {workspace} are the
   prompt and its working directory.
2. GET /v1/jobs/{id}/logs?tail=N: 0 -> [], 2 -> the last two lines, default
   100, 10000 allowed; 10001, -1, abc, 1.5 -> 400 problem+json.
3. GET /v1/jobs: status filter, limit, and next_cursor paging over 5 jobs with
   limit=2 lists every id exactly once, newest first; bad status, limit and
   cursor values are 400 problem+json.
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
STAGES = [(10, "plan"), (30, "keyframes"), (55, "generation"), (80, "stitch"), (95, "upload")]
JOB_FIELDS = {"id", "status", "progress", "stage", "created_at", "started_at", "finished_at",
              "gcs_uri", "artifact_uri", "error"}
SECRETS = ["abc123secret", h.TOKEN]


def command_pipeline(script, **extra):
    pipeline = {"default_backend": "command", "command": [script, "{config}", "{prompt}", "{workspace}"]}
    pipeline.update(extra)
    return pipeline


def parse_flat_yaml(text):
    """Top-level `key: value` pairs of the effective config as reel writes it
    (strings double-quoted); nested blocks are kept as their raw lines."""
    out, current = {}, None
    for line in text.splitlines():
        m = re.match(r'^([A-Za-z_][A-Za-z0-9_.-]*):(?: (.*))?$', line)
        if m:
            current = m.group(1)
            value = m.group(2)
            if value is None:
                out[current] = []
            else:
                try:
                    out[current] = json.loads(value) if value.startswith('"') else value
                except ValueError:
                    out[current] = value
        elif current is not None and isinstance(out.get(current), list):
            item = line.strip()
            if item.startswith("- "):
                item = item[2:]
                try:
                    item = json.loads(item) if item.startswith('"') else item
                except ValueError:
                    pass
            out[current].append(item)
    return out


def is_problem(c, status, headers, body, expected_status, what):
    c.eq(status, expected_status, "%s answers %d" % (what, expected_status))
    c.check(headers.get("content-type", "").startswith("application/problem+json"),
            "%s is application/problem+json (got %r)" % (what, headers.get("content-type")))
    ok = isinstance(body, dict) and body.get("status") == expected_status and bool(body.get("detail"))
    c.check(ok, "%s body has status %d and a detail%s" % (what, expected_status, "" if ok else ": %r" % body))


# ------------------------------------------------------------ lifecycle --

def check_lifecycle(c):
    with h.Reeld(pipeline={}, start=False) as r:
        seen_dir = os.path.join(r.tmp, "seen")
        os.makedirs(seen_dir)
        steps = "".join('echo "REEL_PROGRESS %d %s"\necho "stage %s done"\nsleep 0.5\n' % (p, s, s)
                        for p, s in STAGES)
        script = h.write_script(r.tmp, "pipeline.sh", """
            SEEN=%s
            cp "$1" "$SEEN/effective.yaml"
            printf '%%s' "$2" > "$SEEN/prompt.txt"
            printf '%%s' "$3" > "$SEEN/workspace.txt"
            pwd -P > "$SEEN/cwd.txt"
            ls -A > "$SEEN/workspace_listing.txt"
            echo "pipeline starting"
            echo "token=abc123secret" >&2
            echo "Authorization: Bearer %s" >&2
            %s
            echo "writing the video"
            printf 'not really an mp4' > output/final_video.mp4
            echo "pipeline done"
        """ % (seen_dir, h.TOKEN, steps.replace("\n", "\n            ")))
        r.config = h.merge(r.config, {"service": {"workers": 1},
                                      "pipeline": command_pipeline(
                                          script, prompt="the prompt from the config file",
                                          size="1280*720", generation_mode="keyframe",
                                          segment_duration_seconds=5)})
        r.start()

        prompt = 'a red fox: "quoted" # not a comment'
        status, headers, job = r.json("POST", "/v1/jobs", {"prompt": prompt})
        c.eq(status, 202, "POST /v1/jobs answers 202")
        if not c.check(isinstance(job, dict) and isinstance(job.get("id"), str), "the 202 body has an id: %r" % job):
            return
        job_id = job["id"]
        c.eq(job.get("status"), "queued", "the 202 body says queued")
        c.check(RFC3339_Z.match(str(job.get("created_at"))), "created_at is RFC 3339 UTC: %r" % job.get("created_at"))
        c.eq(headers.get("location"), "/v1/jobs/" + job_id, "Location names the job")

        # Poll and record every distinct (status, progress, stage).
        seen = []
        deadline = time.monotonic() + 40
        last = None
        while time.monotonic() < deadline:
            st, _, last = r.json("GET", "/v1/jobs/" + job_id)
            if st != 200 or not isinstance(last, dict):
                c.fail("GET /v1/jobs/%s answered %d while polling: %r" % (job_id, st, last))
                return
            key = (last.get("status"), last.get("progress"), last.get("stage"))
            if not seen or seen[-1] != key:
                seen.append(key)
            if last.get("status") in h.TERMINAL_STATUSES:
                break
            time.sleep(0.03)
        print("       observed (status, progress, stage): %s" % seen, flush=True)
        done = last
        if not c.eq(done.get("status"), "finished", "the job finishes" + (
                "" if done.get("status") == "finished" else " (last seen: %s)" % json.dumps(done))):
            _, _, logs = r.json("GET", "/v1/jobs/%s/logs" % job_id)
            print("       logs: %r" % logs, flush=True)
            return

        progresses = [p for (_, p, _) in seen]
        c.check(all(isinstance(p, int) and 0 <= p <= 100 for p in progresses),
                "progress is always an integer from 0 to 100: %s" % progresses)
        c.check(all(a <= b for a, b in zip(progresses, progresses[1:])),
                "progress never goes backwards: %s" % progresses)
        reported = {(p, s) for p, s in STAGES}
        running = [(p, s) for (st, p, s) in seen if st == "progress"]
        c.check(all(pair in reported for pair in running),
                "every progress/stage seen while running is one the script reported: %s" % running)
        c.eq(sorted(set(running)), sorted(reported),
             "polling saw every stage the script reported, in order")
        statuses = [st for (st, _, _) in seen]
        c.check(set(statuses) <= {"queued", "started", "progress", "finished"},
                "only queued/started/progress/finished were seen: %s" % statuses)
        c.eq(done.get("progress"), 100, "a finished job is at 100%")
        c.check(JOB_FIELDS <= set(done), "GET /v1/jobs/{id} has every field of the contract (missing %s)"
                % sorted(JOB_FIELDS - set(done)))
        c.eq(done.get("error"), None, "a finished job has error null")
        c.eq(done.get("created_at"), job.get("created_at"), "created_at is the one the 202 gave")
        stamps = [done.get("created_at"), done.get("started_at"), done.get("finished_at")]
        c.check(all(isinstance(t, str) and RFC3339_Z.match(t) for t in stamps),
                "created_at, started_at, finished_at are RFC 3339 UTC with Z: %s" % stamps)
        if all(isinstance(t, str) and RFC3339_Z.match(t) for t in stamps):
            # Same format and all UTC: comparing after padding the fraction is exact.
            def norm(t):
                base, _, frac = t[:-1].partition(".")
                return base + "." + frac.ljust(9, "0")
            c.check(norm(stamps[0]) <= norm(stamps[1]) <= norm(stamps[2]),
                    "created_at <= started_at <= finished_at: %s" % stamps)

        uri = done.get("artifact_uri")
        c.check(isinstance(uri, str) and uri.startswith("reel-local:"), "artifact_uri starts with reel-local:: %r" % uri)
        c.check(isinstance(uri, str) and r.data_dir not in uri and r.tmp not in uri,
                "artifact_uri does not reveal data_dir (%s): %r" % (r.data_dir, uri))
        month = str(done.get("created_at"))[:7]
        c.check(isinstance(uri, str) and uri.endswith("/%s/%s/final_video.mp4" % (month, job_id)),
                "artifact_uri ends with {YYYY-MM}/{job_id}/final_video.mp4 (month %s): %r" % (month, uri))
        c.eq(done.get("gcs_uri"), None, "gcs_uri is null with local storage")

        # Logs: the script's lines are there, progress lines and secrets are not.
        st, _, logs = r.json("GET", "/v1/jobs/%s/logs?tail=10000" % job_id)
        c.eq(st, 200, "GET logs answers 200")
        lines = logs.get("lines") if isinstance(logs, dict) else None
        if not c.check(isinstance(lines, list) and all(isinstance(x, str) for x in lines),
                       "logs are {\"lines\": [strings]}: %r" % logs):
            return
        for expected in ["pipeline starting", "stage plan done", "stage upload done", "writing the video",
                         "pipeline done"]:
            c.check(expected in lines, "the log holds the script's line %r" % expected)
        c.check(lines.index("pipeline starting") < lines.index("stage plan done") < lines.index("pipeline done")
                if {"pipeline starting", "stage plan done", "pipeline done"} <= set(lines) else False,
                "log lines keep the order the script wrote them")
        c.check(not any("REEL_PROGRESS" in x for x in lines), "REEL_PROGRESS lines set progress, not the log")
        text = "\n".join(lines)
        for secret in SECRETS:
            c.check(secret not in text, "the log never holds the secret %r" % secret)
        c.check(any(x.startswith("token=") for x in lines) and any(x.startswith("Authorization:") for x in lines),
                "the redacted lines are still logged (redaction replaces, it does not drop): %r"
                % [x for x in lines if "token" in x.lower() or "authorization" in x.lower()])
        c.check(not any(s in r.log_text() for s in SECRETS), "reeld's own log never holds either secret")

        # What the pipeline received.
        def read(name):
            try:
                with open(os.path.join(seen_dir, name), encoding="utf-8") as f:
                    return f.read()
            except FileNotFoundError:
                return None
        effective_text = read("effective.yaml")
        if c.check(effective_text is not None, "the script could read {config}"):
            eff = parse_flat_yaml(effective_text)
            print("       effective config:\n" + "\n".join("         | " + l for l in effective_text.splitlines()),
                  flush=True)
            c.eq(eff.get("prompt"), prompt, "the effective config's prompt is the HTTP prompt")
            c.eq(eff.get("size"), "1280*720", "pipeline.size passes through unchanged")
            c.eq(eff.get("generation_mode"), "keyframe", "pipeline.generation_mode passes through unchanged")
            c.check(eff.get("segment_duration_seconds") in (5, "5"),
                    "pipeline.segment_duration_seconds passes through unchanged: %r"
                    % eff.get("segment_duration_seconds"))
            c.eq(eff.get("default_backend"), "command", "pipeline.default_backend passes through unchanged")
            c.eq(eff.get("command"), [script, "{config}", "{prompt}", "{workspace}"],
                 "pipeline.command passes through unchanged")
            c.check("the prompt from the config file" not in effective_text,
                    "the config's own prompt is replaced, not kept alongside")
        c.eq(read("prompt.txt"), prompt, "{prompt} is the HTTP prompt, as one argument")
        workspace = read("workspace.txt")
        c.eq(workspace, os.path.join(os.path.realpath(r.data_dir), "work", job_id),
             "{workspace} is data_dir/work/<job_id>")
        c.eq((read("cwd.txt") or "").strip(), os.path.realpath(workspace or "/nonexistent"),
             "the pipeline runs with its workspace as the working directory")
        listing = (read("workspace_listing.txt") or "").split()
        c.check("output" in listing and "pipeline_config.yaml" in listing,
                "the workspace holds output/ and pipeline_config.yaml: %s" % listing)

        # The artifact endpoint agrees with the job.
        st, _, art = r.json("GET", "/v1/jobs/%s/artifact" % job_id)
        c.eq(st, 200, "GET artifact of the finished job answers 200")
        c.eq(isinstance(art, dict) and art.get("artifact_uri"), uri, "the artifact endpoint names the same artifact_uri")


# ------------------------------------------------------------ logs tail --

def check_logs_tail(c):
    with h.Reeld(start=False) as r:
        script = h.write_script(r.tmp, "lines.sh", """
            i=1
            while [ $i -le 150 ]; do echo "line $i"; i=$((i + 1)); done
            printf 'x' > output/final_video.mp4
        """)
        r.config = h.merge(r.config, {"service": {"workers": 1}, "pipeline": command_pipeline(script)})
        r.start()
        _, _, job = r.json("POST", "/v1/jobs", {"prompt": "one hundred and fifty lines"})
        job_id = job["id"]
        r.wait_job(job_id, "finished", timeout=30)
        base = "/v1/jobs/%s/logs" % job_id
        everything = ["line %d" % i for i in range(1, 151)]

        def lines(query):
            st, headers, body = r.json("GET", base + query)
            ok = c.eq(st, 200, "GET logs%s answers 200" % query)
            c.check(headers.get("content-type", "").startswith("application/json"),
                    "GET logs%s is application/json" % query)
            return body.get("lines") if ok and isinstance(body, dict) else None

        c.eq(lines("?tail=0"), [], "tail=0 gives no lines")
        c.eq(lines("?tail=2"), everything[-2:], "tail=2 gives the last two lines")
        c.eq(lines("?tail=1"), everything[-1:], "tail=1 gives the last line")
        c.eq(lines(""), everything[-100:], "no tail gives the last 100 lines (the default)")
        c.eq(lines("?tail=10000"), everything, "tail=10000 (the maximum) gives every line")
        c.eq(lines("?tail=150"), everything, "tail=150 gives every line")
        for bad in ["10001", "-1", "abc", "1.5", "", "1e2", "99999999999999999999"]:
            st, headers, body = r.json("GET", base + "?tail=" + bad)
            is_problem(c, st, headers, body, 400, "GET logs?tail=%s" % bad)
        st, headers, body = r.json("GET", "/v1/jobs/job_00000000000000000000000000/logs")
        c.eq(st, 404, "GET logs of an unknown job answers 404")


# -------------------------------------------------------------- listing --

def check_listing(c):
    with h.Reeld(start=False) as r:
        script = h.write_script(r.tmp, "maybe_fail.sh", """
            case "$2" in
              fail*) echo "failing on purpose" >&2; exit 3 ;;
            esac
            printf 'x' > output/final_video.mp4
        """)
        r.config = h.merge(r.config, {"service": {"workers": 1}, "pipeline": command_pipeline(script)})
        r.start()
        prompts = ["ok one", "fail two", "ok three", "fail four", "ok five"]
        ids = []
        for p in prompts:
            st, _, job = r.json("POST", "/v1/jobs", {"prompt": p})
            c.eq(st, 202, "POST %r answers 202" % p)
            ids.append(job["id"])
        expected_status = {}
        for job_id, p in zip(ids, prompts):
            want = "failed" if p.startswith("fail") else "finished"
            expected_status[job_id] = r.wait_job(job_id, want, timeout=30)["status"]
        newest_first = list(reversed(ids))

        st, headers, page = r.json("GET", "/v1/jobs")
        c.eq(st, 200, "GET /v1/jobs answers 200")
        c.check(isinstance(page, dict) and isinstance(page.get("jobs"), list) and "next_cursor" in page,
                "GET /v1/jobs is {jobs: [...], next_cursor}: %r" % page)
        c.eq([j.get("id") for j in page.get("jobs", [])], newest_first, "GET /v1/jobs lists every job, newest first")
        c.eq(page.get("next_cursor"), None, "a page that holds the rest has next_cursor null")
        by_id = {j.get("id"): j for j in page.get("jobs", [])}
        _, _, single = r.json("GET", "/v1/jobs/" + ids[0])
        c.eq(by_id.get(ids[0]), single, "a listed job is the same document GET /v1/jobs/{id} gives")

        # Paging with limit=2 covers every id exactly once, newest first.
        collected, cursor, pages = [], None, 0
        while pages < 10:
            path = "/v1/jobs?limit=2" + ("&cursor=" + cursor if cursor else "")
            st, _, page = r.json("GET", path)
            if not c.eq(st, 200, "GET %s answers 200" % path):
                break
            pages += 1
            jobs = page.get("jobs", [])
            c.check(1 <= len(jobs) <= 2, "page %d holds 1 or 2 jobs: %d" % (pages, len(jobs)))
            collected += [j.get("id") for j in jobs]
            cursor = page.get("next_cursor")
            if cursor is None:
                break
            c.check(isinstance(cursor, str) and cursor, "next_cursor is a non-empty string: %r" % cursor)
        c.eq(pages, 3, "5 jobs with limit=2 make 3 pages")
        c.eq(collected, newest_first, "paging with limit=2 lists every id exactly once, newest first")

        for status_name in ["finished", "failed", "queued", "canceled"]:
            st, _, page = r.json("GET", "/v1/jobs?status=" + status_name)
            got = [j.get("id") for j in page.get("jobs", [])] if st == 200 else None
            want = [i for i in newest_first if expected_status[i] == status_name]
            c.eq(got, want, "status=%s lists exactly the %s jobs, newest first" % (status_name, status_name))
            c.check(st == 200 and all(j.get("status") == status_name for j in page.get("jobs", [])),
                    "every job listed by status=%s is %s" % (status_name, status_name))

        # Filter and paging together.
        st, _, first = r.json("GET", "/v1/jobs?status=finished&limit=2")
        want = [i for i in newest_first if expected_status[i] == "finished"]
        c.eq([j.get("id") for j in first.get("jobs", [])], want[:2], "status=finished&limit=2: first page")
        cursor = first.get("next_cursor")
        if c.check(isinstance(cursor, str), "status=finished&limit=2 has a next_cursor: %r" % cursor):
            st, _, second = r.json("GET", "/v1/jobs?status=finished&limit=2&cursor=" + cursor)
            c.eq([j.get("id") for j in second.get("jobs", [])], want[2:], "status=finished&limit=2: second page")
            c.eq(second.get("next_cursor"), None, "the last filtered page has next_cursor null")

        st, _, page = r.json("GET", "/v1/jobs?limit=1")
        c.eq([j.get("id") for j in page.get("jobs", [])], newest_first[:1], "limit=1 gives the newest job")
        st, _, page = r.json("GET", "/v1/jobs?limit=100")
        c.eq(st, 200, "limit=100 (the maximum) is accepted")

        for query in ["status=bogus", "status=", "status=FINISHED", "limit=0", "limit=-1", "limit=101",
                      "limit=abc", "limit=1.5", "cursor=bogus", "cursor=", "cursor=%00"]:
            st, headers, body = r.json("GET", "/v1/jobs?" + query)
            is_problem(c, st, headers, body, 400, "GET /v1/jobs?%s" % query)


def body(c):
    check_lifecycle(c)
    check_logs_tail(c)
    check_listing(c)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
