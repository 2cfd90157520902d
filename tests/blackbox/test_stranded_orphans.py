#!/usr/bin/env python3
"""A job's processes do not outlive their reeld, and a restarted reeld finds
leftovers by what it recorded at spawn, not by working directory (issue 9,
"Jobs that must never be stranded", point 4).

The pipeline `cd`s out of its workspace and starts a grandchild (`sleep`), so
no process of the job has its cwd inside data_dir/work.

1. kill -9 reeld: within a few seconds the pipeline and its grandchild are
   gone (the per-run supervisor saw reeld's end). After a restart the job runs
   again, and never beside its first run.
2. kill -9 reeld and the run's supervisor together (nothing left to notice):
   the restarted reeld kills the orphaned process group, found by the record
   written at spawn, before it runs the job again.
3. A pipeline that exits 0 leaving helpers (one in a session of its own):
   neither outlives the finished job.

On the baseline, both orphans kept running (their cwd is elsewhere) beside the
job's second run.
"""

import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402


def pipeline(r, outside):
    return h.write_script(r.tmp, "pipeline.sh", """
        D=%s
        n=$(cat "$D/count" 2>/dev/null || echo 0)
        n=$((n + 1))
        echo $n > "$D/count"
        cd "$D"
        sleep 300 &
        echo $! > "$D/run$n.child"
        echo $$ > "$D/run$n.pid"
        echo "REEL_PROGRESS 10 plan"
        wait
    """ % outside)


def start(c, outside, what):
    r = h.Reeld(start=False)
    r.config = h.merge(r.config, {
        "service": {"workers": 1, "cancel_grace_seconds": 1},
        "pipeline": {"default_backend": "command", "command": [pipeline(r, outside), "{config}"]},
    })
    r.start()
    status, _, job = r.json("POST", "/v1/jobs", {"prompt": what})
    c.eq(status, 202, "POST answers 202")
    pids = h.wait_for(lambda: (h.read_pid(os.path.join(outside, "run1.pid")),
                               h.read_pid(os.path.join(outside, "run1.child")))
                      if h.read_pid(os.path.join(outside, "run1.child")) else None, 20)
    c.check(pids and all(pids), "the first run started (pipeline and grandchild pids %r)" % (pids,))
    return r, job["id"], pids


def gone(pids):
    return not any(h.pid_alive(p) for p in pids)


def parent_of(pid):
    with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def after_restart(c, r, job_id, outside, first):
    r.start()
    second = h.wait_for(lambda: h.read_pid(os.path.join(outside, "run2.pid")), 20)
    c.check(second, "after the restart the job runs again")
    c.check(gone(first), "its first run is not running beside the second (pids %r)" % (first,))
    status, _, job = r.json("GET", "/v1/jobs/" + job_id)
    c.check(status == 200 and job["attempts"] == 2, "the job is on its second attempt (%r)" % (job or {}).get("attempts"))


def reeld_killed(c):
    outside = tempfile.mkdtemp(prefix="reel-outside-")
    r, job_id, pids = start(c, outside, "reeld dies")
    try:
        if not pids or not all(pids):
            return
        r.kill9()
        c.check(h.wait_for(lambda: gone(pids), 5), "kill -9 of reeld ends the pipeline and its grandchild (%r)" % (pids,))
        after_restart(c, r, job_id, outside, pids)
    finally:
        for p in pids or ():
            if p and h.pid_alive(p):
                os.kill(p, signal.SIGKILL)
        r.close(keep=c.failed > 0)
        shutil.rmtree(outside, ignore_errors=True)


def reeld_and_supervisor_killed(c):
    outside = tempfile.mkdtemp(prefix="reel-outside-")
    r, job_id, pids = start(c, outside, "both die")
    try:
        if not pids or not all(pids):
            return
        parent = parent_of(pids[0])
        reeld_pid = r.proc.pid
        # Both die with nothing left to notice: the supervisor is stopped
        # first (else reeld, seeing it exit, or it, seeing reeld's end, would
        # clean up), then reeld and the stopped supervisor are SIGKILLed.
        if parent != reeld_pid:
            os.kill(parent, signal.SIGSTOP)
        r.kill9()
        if parent != reeld_pid:
            os.kill(parent, signal.SIGKILL)
        time.sleep(0.5)
        c.check(not gone(pids), "with its supervisor killed too, the job's processes are left running (%r)" % (pids,))
        r.start()
        c.check(h.wait_for(lambda: gone(pids), 5),
                "the restarted reeld kills them, found by the record made at spawn (%r)" % (pids,))
        second = h.wait_for(lambda: h.read_pid(os.path.join(outside, "run2.pid")), 20)
        c.check(second, "and then runs the job again")
    finally:
        for p in pids or ():
            if p and h.pid_alive(p):
                os.kill(p, signal.SIGKILL)
        r.close(keep=c.failed > 0)
        shutil.rmtree(outside, ignore_errors=True)


def pipeline_left_helpers(c):
    """3. A pipeline that exits 0 and leaves helpers behind, one of them in a
    session of its own (out of reach of the group kill), with stdout and
    stderr closed so nothing holds the run open: once the job has finished
    neither helper is running (the supervisor kills its leftover
    descendants before it exits)."""
    outside = tempfile.mkdtemp(prefix="reel-outside-")
    helpers = []
    with h.Reeld(start=False) as r:
        script = h.write_script(r.tmp, "pipeline.sh", """
            D=%s
            sleep 300 </dev/null >/dev/null 2>&1 &
            echo $! > "$D/in-group.pid"
            setsid sh -c 'echo $$ > "$1"; exec sleep 300' helper "$D/own-session.pid" </dev/null >/dev/null 2>&1 &
            while [ ! -s "$D/own-session.pid" ]; do sleep 0.01; done
            printf 'x' > output/final_video.mp4
        """ % outside)
        r.config = h.merge(r.config, {"service": {"workers": 1},
                                      "pipeline": {"default_backend": "command", "command": [script]}})
        r.start()
        try:
            status, _, job = r.json("POST", "/v1/jobs", {"prompt": "leaves helpers"})
            c.eq(status, 202, "POST answers 202")
            done = h.wait_for(lambda: r.json("GET", "/v1/jobs/" + job["id"])[2].get("status") in h.TERMINAL_STATUSES, 20)
            c.eq(r.json("GET", "/v1/jobs/" + job["id"])[2].get("status") if done else None, "finished",
                 "the pipeline that left helpers finished")
            helpers = [h.read_pid(os.path.join(outside, n)) for n in ("in-group.pid", "own-session.pid")]
            c.check(all(helpers), "both helpers started (%r)" % (helpers,))
            c.check(h.wait_for(lambda: gone([p for p in helpers if p]), 2),
                    "neither helper outlives the finished job (%r alive)"
                    % ([p for p in helpers if p and h.pid_alive(p)],))
        finally:
            for p in helpers:
                if p and h.pid_alive(p):
                    os.kill(p, signal.SIGKILL)
            shutil.rmtree(outside, ignore_errors=True)


def body(c):
    reeld_killed(c)
    reeld_and_supervisor_killed(c)
    pipeline_left_helpers(c)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
