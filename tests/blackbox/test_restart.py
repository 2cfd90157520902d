#!/usr/bin/env python3
"""Jobs survive reeld stopping in the middle of them ("every accepted job ends
in a terminal state, and none is lost").

1. kill -9 with two jobs running and two queued (workers: 2), then a restart
   on the same data_dir: all four jobs finish, none is lost or duplicated in
   the listing, the two that were running are run again and end with
   attempts 2, the two that were queued with attempts 1.
2. kill -9 with max_attempts: 1: after the restart the interrupted job is
   failed with an error saying its worker stopped, and the queued jobs still
   finish.
3. SIGTERM with a job running whose pipeline ignores SIGTERM
   (cancel_grace_seconds: 1): reeld exits 0 within grace + 2 s and leaves no
   job process behind; after a restart the interrupted job runs again and
   finishes with attempts still 1 — a shutdown is not the job's fault.
4. A cancel accepted just before kill -9 is kept: after the restart that job
   is canceled (not run again) and the queued one finishes.

About kill -9: reeld starts every pipeline in its own session (setsid), so a
crash of reeld does not take the pipeline processes with it. The restarted
reeld kills whatever runs inside its work directory before it starts anything,
so a job's second run never overlaps an orphaned first run; this test checks
that, and that every job still reaches the right terminal state.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

RUNNING = ("started", "progress")


def command_pipeline(script):
    return {"default_backend": "command", "command": [script, "{config}", "{prompt}", "{workspace}"]}


def pipeline_script(r, outside, ignore_term=False):
    """A pipeline that counts its runs and records its pid per run outside the
    workspace, reports progress, sleeps ~1.5 s and writes the artifact."""
    return h.write_script(r.tmp, "pipeline.sh", """
        D=%s
        %s
        n=$(cat "$D/$2.count" 2>/dev/null || echo 0)
        n=$((n + 1))
        echo $n > "$D/$2.count"
        echo $$ > "$D/$2.run$n.pid"
        echo "REEL_PROGRESS 10 plan"
        echo "run $n of $2"
        sleep 0.5; sleep 0.5; sleep 0.5
        echo "REEL_PROGRESS 90 stitch"
        printf 'x' > output/final_video.mp4
    """ % (outside, "trap '' TERM" if ignore_term else ""))


def run_count(outside, prompt):
    try:
        with open(os.path.join(outside, prompt + ".count"), encoding="ascii") as f:
            return int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def post_all(c, r, prompts):
    ids = {}
    for p in prompts:
        status, _, job = r.json("POST", "/v1/jobs", {"prompt": p})
        if not c.eq(status, 202, "POST %r answers 202" % p):
            raise h.ReeldError("POST %r answered %d: %r" % (p, status, job))
        ids[p] = job["id"]
    return ids


def statuses(r, ids):
    out = {}
    for p, job_id in ids.items():
        status, _, job = r.json("GET", "/v1/jobs/" + job_id, timeout=5)
        out[p] = job if status == 200 and isinstance(job, dict) else {}
    return out


def wait_running(r, ids, n, timeout=20):
    """Waits until exactly n jobs run (started/progress); returns their prompts."""
    def probe():
        jobs = statuses(r, ids)
        running = sorted(p for p, j in jobs.items() if j.get("status") in RUNNING)
        return running if len(running) == n else None
    return h.wait_for(probe, timeout, interval=0.02)


def orphan_report(outside, prompts):
    """pids of the first runs of prompts that are still alive."""
    alive = []
    for p in prompts:
        pid = h.read_pid(os.path.join(outside, p + ".run1.pid"))
        if pid and h.pid_alive(pid):
            alive.append(pid)
    return alive


def listed_ids(r):
    status, _, page = r.json("GET", "/v1/jobs?limit=100")
    return [j.get("id") for j in page.get("jobs", [])] if status == 200 and isinstance(page, dict) else None


# ---------------------------------------------------------- 1: kill -9 --

def check_kill9_requeues(c):
    with h.Reeld(start=False) as r:
        outside = os.path.join(r.tmp, "outside")
        os.makedirs(outside)
        script = pipeline_script(r, outside)
        r.config = h.merge(r.config, {"service": {"workers": 2}, "pipeline": command_pipeline(script)})
        r.start()
        prompts = ["job-a", "job-b", "job-c", "job-d"]
        ids = post_all(c, r, prompts)
        running = wait_running(r, ids, 2)
        if not c.check(running, "two of the four jobs run at once (workers: 2)"):
            return
        # The pipelines write their pid first thing; kill only once both have.
        h.wait_for(lambda: all(h.read_pid(os.path.join(outside, p + ".run1.pid")) for p in running), 5, 0.02)
        before = statuses(r, ids)
        running = sorted(p for p, j in before.items() if j.get("status") in RUNNING)
        waiting = sorted(p for p, j in before.items() if j.get("status") == "queued")
        print("       kill -9 with %s running, %s queued" % (running, waiting), flush=True)
        r.kill9()
        c.check(not r.running(), "reeld is gone after kill -9")
        orphans = orphan_report(outside, running)
        print("       observation: %d of the %d running pipelines outlived reeld's kill -9 (pids %s)"
              % (len(orphans), len(running), orphans), flush=True)

        r.start()
        # The orphaned first runs are killed before any second run starts.
        first_pids = {p: h.read_pid(os.path.join(outside, p + ".run1.pid")) for p in running}
        for p in running:
            started = h.wait_for(lambda: h.read_pid(os.path.join(outside, p + ".run2.pid")), 10, 0.02)
            c.check(started, "%s runs again after the restart" % p)
            c.check(not first_pids[p] or not h.pid_alive(first_pids[p]),
                    "%s: the orphaned first run is gone when the second starts" % p)
        for p in prompts:
            try:
                r.wait_job(ids[p], "finished", timeout=40)
            except h.ReeldError as e:
                c.fail("job %s (%s) finishes after the restart: %s" % (p, ids[p], str(e).splitlines()[0]))
        after = statuses(r, ids)
        c.eq(sorted(p for p in prompts if after[p].get("status") == "finished"), prompts,
             "after kill -9 and a restart all four jobs finish")
        for p in running:
            c.eq(after[p].get("attempts"), 2, "%s, running at the kill, ends with attempts 2" % p)
            c.eq(run_count(outside, p), 2, "%s, running at the kill, ran twice" % p)
        for p in waiting:
            c.eq(after[p].get("attempts"), 1, "%s, queued at the kill, ends with attempts 1" % p)
            c.eq(run_count(outside, p), 1, "%s, queued at the kill, ran once" % p)
        listed = listed_ids(r)
        c.eq(sorted(listed or []), sorted(ids.values()), "GET /v1/jobs lists each of the four jobs exactly once")
        for p in prompts:
            c.check(isinstance(after[p].get("artifact_uri"), str), "%s has an artifact_uri" % p)
        c.eq(orphan_report(outside, running), [], "no first-run pipeline is alive at the end")


# ------------------------------------------- 2: kill -9, max_attempts 1 --

def check_kill9_exhausted(c):
    with h.Reeld(start=False) as r:
        outside = os.path.join(r.tmp, "outside")
        os.makedirs(outside)
        script = pipeline_script(r, outside)
        r.config = h.merge(r.config, {"service": {"workers": 1, "max_attempts": 1},
                                      "pipeline": command_pipeline(script)})
        r.start()
        prompts = ["first", "second", "third"]
        ids = post_all(c, r, prompts)
        running = wait_running(r, ids, 1)
        if not c.check(running == ["first"], "the first job runs alone (workers: 1): %s" % running):
            return
        h.wait_for(lambda: h.read_pid(os.path.join(outside, "first.run1.pid")), 5, 0.02)
        r.kill9()
        r.start()
        try:
            job = r.wait_job(ids["first"], "failed", timeout=20)
        except h.ReeldError as e:
            c.fail("with max_attempts 1, the job running at kill -9 is failed after the restart: %s"
                   % str(e).splitlines()[0])
            job = {}
        error = (job.get("error") or "").lower()
        print("       error: %r" % job.get("error"), flush=True)
        c.check("worker" in error and "stop" in error,
                "the error says the worker running the job stopped: %r" % job.get("error"))
        c.eq(job.get("attempts"), 1, "the failed job used its one attempt")
        c.check(job.get("finished_at") is not None, "the failed job has finished_at")
        for p in ("second", "third"):
            try:
                done = r.wait_job(ids[p], "finished", timeout=30)
                c.eq(done.get("attempts"), 1, "%s, queued at the kill, finishes with attempts 1" % p)
            except h.ReeldError as e:
                c.fail("%s, queued at the kill, finishes: %s" % (p, str(e).splitlines()[0]))
        c.eq(run_count(outside, "first"), 1, "the failed job was not run again")
        c.eq(sorted(listed_ids(r) or []), sorted(ids.values()), "GET /v1/jobs lists each of the three jobs once")


# ------------------------------------------------------- 3: SIGTERM --

def check_graceful_shutdown(c):
    grace = 1.0
    with h.Reeld(start=False) as r:
        outside = os.path.join(r.tmp, "outside")
        os.makedirs(outside)
        script = pipeline_script(r, outside, ignore_term=True)
        r.config = h.merge(r.config, {"service": {"workers": 1, "cancel_grace_seconds": grace},
                                      "pipeline": command_pipeline(script)})
        r.start()
        ids = post_all(c, r, ["interrupted", "waiting"])
        running = wait_running(r, ids, 1)
        if not c.check(running == ["interrupted"], "the first job runs (workers: 1): %s" % running):
            return
        pid = h.wait_for(lambda: h.read_pid(os.path.join(outside, "interrupted.run1.pid")), 5, 0.02)
        start = time.monotonic()
        try:
            code = r.stop(timeout=grace + 10)
        except h.ReeldError as e:
            c.fail("reeld exits after SIGTERM: %s" % str(e).splitlines()[0])
            return
        elapsed = time.monotonic() - start
        print("       measured: reeld exited %.2f s after SIGTERM (cancel_grace_seconds %.1f)" % (elapsed, grace),
              flush=True)
        c.eq(code, 0, "reeld exits 0 on SIGTERM")
        c.check(elapsed <= grace + 2, "reeld exits within cancel_grace_seconds + 2 s of SIGTERM: %.2f s" % elapsed)
        if c.check(pid, "the interrupted pipeline wrote its pid"):
            c.check(h.wait_for(lambda: not h.pid_alive(pid), 1.0),
                    "a graceful shutdown leaves no job process behind (pid %s)" % pid)
        c.eq(run_count(outside, "waiting"), 0, "the queued job did not start during the shutdown")

        r.start()
        for p in ("interrupted", "waiting"):
            try:
                done = r.wait_job(ids[p], "finished", timeout=30)
                c.eq(done.get("attempts"), 1, "%s finishes after the restart with attempts 1" % p)
            except h.ReeldError as e:
                c.fail("%s finishes after the restart: %s" % (p, str(e).splitlines()[0]))
        c.eq(run_count(outside, "interrupted"), 2,
             "the interrupted job ran again after the restart (2 runs, 1 counted attempt)")
        c.eq(run_count(outside, "waiting"), 1, "the queued job ran once")


# ------------------------------------------- 4: cancel, then kill -9 --

def check_cancel_survives_crash(c):
    with h.Reeld(start=False) as r:
        outside = os.path.join(r.tmp, "outside")
        os.makedirs(outside)
        script = pipeline_script(r, outside, ignore_term=True)
        # A long grace: the cancel is recorded but the pipeline is still running at the kill.
        r.config = h.merge(r.config, {"service": {"workers": 1, "cancel_grace_seconds": 30},
                                      "pipeline": command_pipeline(script)})
        r.start()
        ids = post_all(c, r, ["cancel-me", "next"])
        running = wait_running(r, ids, 1)
        if not c.check(running == ["cancel-me"], "the first job runs (workers: 1): %s" % running):
            return
        # "started" is recorded before the process runs: wait until its script has begun
        c.check(h.wait_for(lambda: run_count(outside, "cancel-me") == 1, 10, 0.02),
                "the first job's pipeline process has started")
        status, _, answer = r.json("POST", "/v1/jobs/%s/cancel" % ids["cancel-me"])
        c.eq((status, answer), (200, {"ok": True}), "cancel of the running job answers 200 {\"ok\": true}")
        r.kill9()
        r.start()
        try:
            r.wait_job(ids["cancel-me"], "canceled", timeout=20)
            c.check(True, "a job whose cancel was accepted before kill -9 is canceled after the restart")
        except h.ReeldError as e:
            c.fail("a job whose cancel was accepted before kill -9 is canceled after the restart: %s"
                   % str(e).splitlines()[0])
        try:
            done = r.wait_job(ids["next"], "finished", timeout=30)
            c.eq(done.get("attempts"), 1, "the queued job finishes after the restart with attempts 1")
        except h.ReeldError as e:
            c.fail("the queued job finishes after the restart: %s" % str(e).splitlines()[0])
        c.eq(run_count(outside, "cancel-me"), 1, "the canceled job was not run again")


def body(c):
    check_kill9_requeues(c)
    check_kill9_exhausted(c)
    check_graceful_shutdown(c)
    check_cancel_survives_crash(c)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
