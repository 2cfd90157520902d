#!/usr/bin/env python3
"""Cancellation, retries, failures, timeouts and back-pressure, seen from outside.

a. Cancelling a running job whose pipeline ignores SIGTERM and has started a
   background sleeper and a TERM-ignoring grandchild: POST .../cancel answers
   {"ok": true}; SIGTERM reaches the group first; the job is canceled within
   cancel_grace_seconds + 1 s (plus slack for a slow machine; the measured time
   is printed); the child, the sleeper and the grandchild are all gone; the
   workspace is removed; a second cancel is 409 and an unknown id 404.
b. Cancelling a queued job (workers: 1, the worker busy): it is canceled at
   once and never starts — its marker file never appears, started_at stays
   null — even after the worker frees up and runs a later job.
c. Exit 75 then 0: the job is retried after a backoff and finishes with
   attempts 2.
d. Exit 3 with "boom: disk on fire" on stderr: failed, not retried, and the
   error holds both the stderr line and the exit status.
e. Exit 75 every time with max_attempts 2: failed after exactly 2 runs.
f. job_timeout_seconds 1 and a pipeline that sleeps 30 s: failed within a few
   seconds, the error names job_timeout_seconds, its processes are gone.
g. workers: 0 and max_queue_depth 2: two jobs queue, the third POST is 429
   with Retry-After and a problem+json body; nothing runs; a cancel frees a
   queue slot.
h. A pipeline whose helper calls setsid() and keeps the job's stdout open:
   a cancel still ends the job canceled within the grace period, and a run
   whose pipeline exited does not outlive job_timeout_seconds.

The pipeline scripts write their pids and counters under the test's own
temporary directory, outside the job workspace (which reel removes).
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

GRACE = 1.0          # service.cancel_grace_seconds
SLACK = 2.5          # extra seconds a slow, loaded 2-core machine may need
MISSING_ID = "job_00000000000000000000000000"


def command_pipeline(script):
    return {"default_backend": "command", "command": [script, "{config}", "{prompt}", "{workspace}"]}


def post(c, r, prompt):
    status, headers, job = r.json("POST", "/v1/jobs", {"prompt": prompt})
    if not c.eq(status, 202, "POST %r answers 202" % prompt) or not isinstance(job, dict):
        raise h.ReeldError("POST %r answered %d: %r\n%s" % (prompt, status, job, r.log_tail()))
    return job["id"]


def get(r, job_id):
    status, _, job = r.json("GET", "/v1/jobs/" + job_id)
    if status != 200 or not isinstance(job, dict):
        raise h.ReeldError("GET /v1/jobs/%s answered %d: %r" % (job_id, status, job))
    return job


def is_problem(c, status, headers, body, expected_status, what):
    c.eq(status, expected_status, "%s answers %d" % (what, expected_status))
    c.check(headers.get("content-type", "").startswith("application/problem+json"),
            "%s is application/problem+json (got %r)" % (what, headers.get("content-type")))
    ok = isinstance(body, dict) and body.get("status") == expected_status and bool(body.get("detail"))
    c.check(ok, "%s body has status %d and a detail%s" % (what, expected_status, "" if ok else ": %r" % body))


def kill_leftovers(pids):
    """SIGKILLs, by pid, any of our pipeline processes a failing server left
    running, so a failed run does not leak them (e.g. a `sleep 300`)."""
    for pid in pids:
        if pid and h.pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


# ------------------------------------------------------ a + b: cancel --

def check_cancel(c):
    with h.Reeld(start=False) as r:
        d = os.path.join(r.tmp, "outside")
        os.makedirs(d)
        script = h.write_script(r.tmp, "pipeline.sh", """
            D=%s
            case "$2" in
              stubborn)
                echo $$ > "$D/stubborn.child.pid"
                # the job's own shell survives SIGTERM (and notes that it got one)
                trap 'echo TERM >> "$D/stubborn.term"' TERM
                sleep 300 &
                echo $! > "$D/stubborn.sleeper.pid"
                # a grandchild that ignores SIGTERM: only SIGKILL ends it
                sh -c 'trap "" TERM; echo $$ > "$1"; exec sleep 300' grandchild "$D/stubborn.grandchild.pid" &
                echo "REEL_PROGRESS 5 plan"
                while :; do sleep 0.1; done
                ;;
              block)
                echo $$ > "$D/block.pid"
                echo "REEL_PROGRESS 5 plan"
                sleep 30
                ;;
              marker)
                touch "$D/marker"
                ;;
            esac
            printf 'x' > output/final_video.mp4
        """ % d)
        r.config = h.merge(r.config, {"service": {"workers": 1, "cancel_grace_seconds": GRACE},
                                      "pipeline": command_pipeline(script)})
        r.start()
        check_cancel_running(c, r, d)
        check_cancel_queued(c, r, d)


def check_cancel_running(c, r, d):
    job_id = post(c, r, "stubborn")
    r.wait_job(job_id, "progress", timeout=20)
    names = ["child", "sleeper", "grandchild"]
    paths = {n: os.path.join(d, "stubborn.%s.pid" % n) for n in names}
    if not c.check(h.wait_for(lambda: all(h.read_pid(p) for p in paths.values()), 10),
                   "the pipeline wrote its child, sleeper and grandchild pids"):
        return
    pids = {n: h.read_pid(p) for n, p in paths.items()}
    print("       pids: %s" % pids, flush=True)
    c.check(all(h.pid_alive(p) for p in pids.values()), "child, sleeper and grandchild run before the cancel")
    workspace = os.path.join(r.data_dir, "work", job_id)
    c.check(os.path.isdir(workspace), "the running job's workspace exists: %s" % workspace)

    start = time.monotonic()
    status, headers, answer = r.json("POST", "/v1/jobs/%s/cancel" % job_id)
    c.eq(status, 200, "cancel of a running job answers 200")
    c.eq(answer, {"ok": True}, "cancel answers {\"ok\": true}")
    job = r.wait_job(job_id, "canceled", timeout=GRACE + 20)
    elapsed = time.monotonic() - start
    print("       measured: canceled %.2f s after POST cancel (cancel_grace_seconds %.1f)" % (elapsed, GRACE),
          flush=True)
    c.check(elapsed <= GRACE + 1 + SLACK,
            "canceled within cancel_grace_seconds + 1 s (+%.1f s slack): took %.2f s" % (SLACK, elapsed))
    c.check(elapsed >= GRACE * 0.9,
            "a pipeline that ignores SIGTERM gets the grace period before SIGKILL: took %.2f s" % elapsed)
    c.check(read_text(os.path.join(d, "stubborn.term")),
            "the pipeline got SIGTERM before it was killed")
    c.check(job.get("finished_at") is not None, "a canceled job has finished_at")
    gone = h.wait_for(lambda: not any(h.pid_alive(p) for p in pids.values()), 1.0)
    alive = [n for n, p in pids.items() if h.pid_alive(p)]
    c.check(gone, "child, sleeper and grandchild are all gone once canceled (still alive: %s)" % alive)
    kill_leftovers(pids.values())
    c.check(h.wait_for(lambda: not os.path.exists(workspace), 2.0),
            "the canceled job's workspace is removed: %s" % workspace)

    status, headers, problem = r.json("POST", "/v1/jobs/%s/cancel" % job_id)
    is_problem(c, status, headers, problem, 409, "a second cancel of the canceled job")
    c.eq(get(r, job_id).get("status"), "canceled", "a second cancel leaves the job canceled")
    status, headers, problem = r.json("POST", "/v1/jobs/%s/cancel" % MISSING_ID)
    is_problem(c, status, headers, problem, 404, "cancel of an unknown job id")
    status, headers, problem = r.json("POST", "/v1/jobs/not-a-job/cancel")
    c.eq(status, 404, "cancel of a malformed job id answers 404")


def check_cancel_queued(c, r, d):
    blocker = post(c, r, "block")
    r.wait_job(blocker, "progress", timeout=20)
    queued = post(c, r, "marker")
    time.sleep(0.6)  # longer than the scheduler's poll: it has had every chance to look at the queue
    c.eq(get(r, queued).get("status"), "queued", "with the one worker busy, the second job stays queued")
    status, _, answer = r.json("POST", "/v1/jobs/%s/cancel" % queued)
    c.eq(status, 200, "cancel of a queued job answers 200")
    c.eq(answer, {"ok": True}, "cancel of a queued job answers {\"ok\": true}")
    job = get(r, queued)
    c.eq(job.get("status"), "canceled", "a queued job is canceled at once")

    # Free the worker, then run one more job: the worker is idle and polling,
    # so had the canceled job been runnable it would have started before this one.
    status, _, _ = r.json("POST", "/v1/jobs/%s/cancel" % blocker)
    c.eq(status, 200, "cancel of the blocking job answers 200")
    r.wait_job(blocker, "canceled", timeout=GRACE + 20)
    later = post(c, r, "after")
    r.wait_job(later, "finished", timeout=20)
    time.sleep(0.3)
    job = get(r, queued)
    c.check(not os.path.exists(os.path.join(d, "marker")), "the canceled queued job never ran (no marker file)")
    c.eq(job.get("status"), "canceled", "the canceled queued job stays canceled")
    c.eq(job.get("started_at"), None, "the canceled queued job has started_at null")
    c.eq(job.get("attempts", 0), 0, "the canceled queued job has no attempts")
    c.check(job.get("finished_at") is not None, "a canceled queued job has finished_at")
    c.check(not os.path.exists(os.path.join(r.data_dir, "work", queued)),
            "the canceled queued job never got a workspace")
    status, headers, problem = r.json("POST", "/v1/jobs/%s/cancel" % queued)
    is_problem(c, status, headers, problem, 409, "a second cancel of the canceled queued job")


# -------------------------------------------------- c + d + e: retries --

def check_retries(c):
    with h.Reeld(start=False) as r:
        d = os.path.join(r.tmp, "outside")
        os.makedirs(d)
        script = h.write_script(r.tmp, "pipeline.sh", """
            D=%s
            n=$(cat "$D/$2.count" 2>/dev/null || echo 0)
            n=$((n + 1))
            echo $n > "$D/$2.count"
            date +%%s.%%N >> "$D/$2.times"
            case "$2" in
              flaky)
                if [ $n -eq 1 ]; then echo "flaky: the renderer is busy" >&2; exit 75; fi
                echo "flaky: run $n works"
                ;;
              doomed)
                echo "warming up"
                echo "boom: disk on fire" >&2
                exit 3
                ;;
              always75)
                echo "still busy (run $n)" >&2
                exit 75
                ;;
            esac
            printf 'x' > output/final_video.mp4
        """ % d)
        r.config = h.merge(r.config, {"service": {"workers": 2, "max_attempts": 2, "retry_base_seconds": 0.2,
                                                  "retry_max_seconds": 5},
                                      "pipeline": command_pipeline(script)})
        r.start()

        def count(name):
            text = read_text(os.path.join(d, name + ".count"))
            return int(text) if text and text.strip().isdigit() else 0

        def times(name):
            return [float(x) for x in (read_text(os.path.join(d, name + ".times")) or "").split()]

        # c. transient then success
        flaky = post(c, r, "flaky")
        job = r.wait_job(flaky, "finished", timeout=30)
        c.eq(job.get("attempts"), 2, "exit 75 then 0: finished with attempts 2")
        c.eq(count("flaky"), 2, "exit 75 then 0: the pipeline ran exactly twice")
        c.eq(job.get("error"), None, "a job that finished after a retry has error null")
        t = times("flaky")
        if len(t) == 2:
            gap = t[1] - t[0]
            print("       measured: %.3f s between the two runs (retry_base_seconds 0.2)" % gap, flush=True)
            c.check(gap >= 0.09, "the retry waits for the backoff (at least half of retry_base_seconds): %.3f s" % gap)
        _, _, logs = r.json("GET", "/v1/jobs/%s/logs?tail=100" % flaky)
        lines = logs.get("lines", []) if isinstance(logs, dict) else []
        c.check("flaky: the renderer is busy" in lines and "flaky: run 2 works" in lines,
                "the log keeps the output of both runs: %r" % lines)

        # d. permanent failure
        doomed = post(c, r, "doomed")
        job = r.wait_job(doomed, "failed", timeout=30)
        error = job.get("error") or ""
        print("       doomed error: %r" % error, flush=True)
        c.check("boom: disk on fire" in error, "the error holds the last stderr line: %r" % error)
        c.check(re.search(r"\b3\b", error) and "status" in error.lower(),
                "the error names the exit status 3: %r" % error)
        c.eq(job.get("attempts"), 1, "a permanent failure is not retried (attempts 1)")
        c.eq(job.get("artifact_uri"), None, "a failed job has no artifact_uri")
        c.check(job.get("finished_at") is not None, "a failed job has finished_at")
        status, _, _ = r.json("GET", "/v1/jobs/%s/artifact" % doomed)
        c.eq(status, 404, "GET artifact of a failed job answers 404")

        # e. transient every time
        always = post(c, r, "always75")
        job = r.wait_job(always, "failed", timeout=30)
        error = job.get("error") or ""
        print("       always75 error: %r" % error, flush=True)
        c.eq(job.get("attempts"), 2, "always exit 75 with max_attempts 2: failed with attempts 2")
        c.check("75" in error, "the error says the runs failed with the transient status 75: %r" % error)
        c.check("still busy (run 2)" in error, "the error holds the last run's stderr line: %r" % error)
        time.sleep(0.8)
        c.eq(count("always75"), 2, "always exit 75 with max_attempts 2: the pipeline ran exactly twice")
        c.eq(count("doomed"), 1, "the permanently failed job ran exactly once")
        c.eq(get(r, always).get("status"), "failed", "the exhausted job stays failed")
        status, headers, problem = r.json("POST", "/v1/jobs/%s/cancel" % always)
        is_problem(c, status, headers, problem, 409, "cancel of a failed job")


# ------------------------------------------------------------ f: timeout --

def check_timeout(c):
    with h.Reeld(start=False) as r:
        d = os.path.join(r.tmp, "outside")
        os.makedirs(d)
        script = h.write_script(r.tmp, "pipeline.sh", """
            D=%s
            echo $$ > "$D/child.pid"
            sleep 30 &
            echo $! > "$D/sleeper.pid"
            echo "REEL_PROGRESS 5 plan"
            wait
            printf 'x' > output/final_video.mp4
        """ % d)
        r.config = h.merge(r.config, {"service": {"workers": 1, "job_timeout_seconds": 1,
                                                  "cancel_grace_seconds": GRACE},
                                      "pipeline": command_pipeline(script)})
        r.start()
        start = time.monotonic()
        job_id = post(c, r, "sleeps for thirty seconds")
        pid_paths = [os.path.join(d, "child.pid"), os.path.join(d, "sleeper.pid")]
        pids = h.wait_for(lambda: [h.read_pid(p) for p in pid_paths] if all(h.read_pid(p) for p in pid_paths)
                          else None, 10) or []
        job = r.wait_job(job_id, "failed", timeout=20)
        elapsed = time.monotonic() - start
        print("       measured: failed %.2f s after POST (job_timeout_seconds 1)" % elapsed, flush=True)
        c.check(elapsed <= 1 + GRACE + SLACK + 1,
                "a job past job_timeout_seconds fails within a few seconds: %.2f s" % elapsed)
        error = job.get("error") or ""
        c.check("job_timeout_seconds" in error, "the error names job_timeout_seconds: %r" % error)
        c.eq(job.get("attempts"), 1, "a timed-out job is not retried")
        if c.check(len(pids) == 2, "the pipeline wrote its pids"):
            c.check(h.wait_for(lambda: not any(h.pid_alive(p) for p in pids), 1.0),
                    "the timed-out pipeline and its sleeper are gone (pids %s)" % pids)
            kill_leftovers(pids)
        c.check(h.wait_for(lambda: not os.path.exists(os.path.join(r.data_dir, "work", job_id)), 2.0),
                "the timed-out job's workspace is removed")


# ----------------------------------------------------------- g: 429 --

def check_queue_full(c):
    with h.Reeld(start=False) as r:
        marker = os.path.join(r.tmp, "ran")
        script = h.write_script(r.tmp, "pipeline.sh", """
            touch %s
            printf 'x' > output/final_video.mp4
        """ % marker)
        r.config = h.merge(r.config, {"service": {"workers": 0, "max_queue_depth": 2},
                                      "pipeline": command_pipeline(script)})
        try:
            r.start()
        except h.ReeldError as e:
            c.fail("reeld accepts service.workers: 0 (%s)" % str(e).splitlines()[0])
            return
        c.check(True, "reeld accepts service.workers: 0")
        first = post(c, r, "first")
        second = post(c, r, "second")
        status, headers, problem = r.json("POST", "/v1/jobs", {"prompt": "third"})
        is_problem(c, status, headers, problem, 429, "POST with max_queue_depth 2 jobs already queued")
        retry_after = headers.get("retry-after", "")
        c.check(retry_after.isdigit() and int(retry_after) >= 1,
                "the 429 carries Retry-After in whole seconds: %r" % retry_after)
        c.check(headers.get("x-request-id"), "the 429 carries X-Request-Id")
        _, _, page = r.json("GET", "/v1/jobs")
        c.eq(len(page.get("jobs", [])), 2, "the refused job was not stored")

        time.sleep(1.2)  # more than the scheduler's poll interval
        for job_id in (first, second):
            job = get(r, job_id)
            c.check(job.get("status") == "queued" and job.get("started_at") is None,
                    "with workers: 0 the job stays queued, never started: %s %s"
                    % (job.get("status"), job.get("started_at")))
        c.check(not os.path.exists(marker), "with workers: 0 no pipeline ran")

        status, _, _ = r.json("POST", "/v1/jobs/%s/cancel" % first)
        c.eq(status, 200, "cancel of a queued job answers 200")
        status, _, _ = r.json("POST", "/v1/jobs", {"prompt": "fourth"})
        c.eq(status, 202, "after a cancel frees a queue slot, POST answers 202 again")
        status, headers, _ = r.json("POST", "/v1/jobs", {"prompt": "fifth"})
        c.eq(status, 429, "and with the queue full again, 429 again")


# ------------------------------------- h: a descendant that leaves the group --

def check_escaped_descendant(c):
    """A pipeline may start a helper that calls setsid() (a daemon) and so
    leaves the job's process group while still holding the job's stdout and
    stderr. The group signals cannot reach it, but the job must still end:
    a cancel must give canceled within the grace period, and a run whose
    pipeline exited must not outlive job_timeout_seconds. The helper lives
    25 s; the test kills it by pid once it has seen what it needs, so a
    failure costs seconds, not minutes."""
    timeout = 3.0
    with h.Reeld(start=False) as r:
        d = os.path.join(r.tmp, "outside")
        os.makedirs(d)
        script = h.write_script(r.tmp, "pipeline.sh", """
            D=%s
            # the helper leaves the job's session and process group but keeps stdout/stderr
            setsid sh -c 'echo $$ > "$1"; exec sleep 25' daemon "$D/$2.daemon.pid" &
            echo "REEL_PROGRESS 5 plan"
            case "$2" in
              cancel-me)
                trap '' TERM
                while :; do sleep 0.1; done
                ;;
              exits)
                sleep 0.5
                echo "the pipeline is done; its helper is not"
                printf 'x' > output/final_video.mp4
                ;;
            esac
        """ % d)
        r.config = h.merge(r.config, {"service": {"workers": 1, "cancel_grace_seconds": GRACE,
                                                  "job_timeout_seconds": timeout},
                                      "pipeline": command_pipeline(script)})
        r.start()

        def daemon_pid(name):
            return h.wait_for(lambda: h.read_pid(os.path.join(d, name + ".daemon.pid")), 10)

        def wait_terminal(job_id, seconds):
            deadline = time.monotonic() + seconds
            while True:
                job = get(r, job_id)
                if job.get("status") in h.TERMINAL_STATUSES or time.monotonic() > deadline:
                    return job
                time.sleep(0.05)

        # cancel
        job_id = post(c, r, "cancel-me")
        r.wait_job(job_id, "progress", timeout=20)
        pid = daemon_pid("cancel-me")
        c.check(pid, "the pipeline started its setsid helper")
        start = time.monotonic()
        status, _, _ = r.json("POST", "/v1/jobs/%s/cancel" % job_id)
        c.eq(status, 200, "cancel of the job with a setsid helper answers 200")
        job = wait_terminal(job_id, GRACE + 1 + SLACK)
        elapsed = time.monotonic() - start
        c.check(job.get("status") == "canceled",
                "a job whose setsid helper holds its stdout is canceled within cancel_grace_seconds + 1 s "
                "(+%.1f s slack): after %.2f s it is %s" % (SLACK, elapsed, job.get("status")))
        kill_leftovers([pid])
        c.check(r.wait_job(job_id, "canceled", timeout=15), "once the helper is gone the job is canceled")

        # exit 0 with the helper still running
        job_id = post(c, r, "exits")
        r.wait_job(job_id, ("started", "progress", "finished"), timeout=20)
        pid = daemon_pid("exits")
        start = time.monotonic()
        job = wait_terminal(job_id, timeout + GRACE + SLACK)
        elapsed = time.monotonic() - start
        c.check(job.get("status") in h.TERMINAL_STATUSES,
                "a job whose pipeline exited but whose setsid helper holds its stdout ends within "
                "job_timeout_seconds + cancel_grace_seconds (+%.1f s slack): after %.2f s it is %s"
                % (SLACK, elapsed, job.get("status")))
        kill_leftovers([pid])
        wait_terminal(job_id, 15)


def body(c):
    check_cancel(c)
    check_retries(c)
    check_timeout(c)
    check_queue_full(c)
    check_escaped_descendant(c)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
