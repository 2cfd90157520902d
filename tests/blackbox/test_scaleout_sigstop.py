#!/usr/bin/env python3
"""A worker paused past its lease and then resumed (issue 10, SPEC §7: "a
worker whose lease was taken over (paused, partitioned) writes nothing for
that job when it comes back: every write is fenced by node and attempt").

One API node and two worker nodes (2 slots each, lease_seconds 3) share a
PostgreSQL. Only worker-1 runs at first; it takes two jobs whose first runs
print a numbered line every 0.1 s:

- job A's first run prints for 3 s, then writes its artifact and exits 0 (so
  when worker-1 comes back it has a finished run to report, late);
- job B's first run prints until it is killed.

worker-2 starts, and worker-1 is stopped with SIGSTOP (its runs keep going:
they are not in its process group). Both leases expire, both jobs are
rescued; worker-2 runs A to its end and starts B's second run, which waits
for a release file. Then worker-1 gets SIGCONT:

- A stays finished, node worker-2, attempts 2; B stays running on worker-2;
- neither job's logs gain a line of a first run after the rescue (the lines
  the paused worker still had to send, and those its runs printed during the
  pause, are refused);
- worker-1 stops B's stale first run (its process is gone within
  cancel_grace_seconds + 2 s), logs "stopping a run that lost its job", and
  its /metrics show reel_leases_lost_total >= 1;
- released, B finishes on worker-2 with attempts 2.

How it fails: an unfenced write (a blind update by id) lets the late finish of
A's first run overwrite node/attempts or append its lines, and lets B's stale
run append lines; a worker that never checks its leases leaves B's first run
running beside its second.
"""

import glob
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import reelharness as h  # noqa: E402

GRACE = 1


def first_run_lines(api, job_id):
    status, _, logs = api.json("GET", "/v1/jobs/%s/logs?tail=10000" % job_id)
    if status != 200 or not isinstance(logs, dict):
        return None
    return sorted(line for line in logs.get("lines", []) if "run1 tick" in line)


def body(c):
    marker_dir = tempfile.mkdtemp(prefix="reel-markers-")
    leftovers = []
    paused = None
    try:
        with pgserver.PgServer() as pg:
            script = h.write_script(marker_dir, "pipeline.sh", """
                D=%s
                n=$(cat "$D/$2.count" 2>/dev/null || echo 0)
                n=$((n + 1))
                echo $n > "$D/$2.count"
                echo $$ > "$D/$2.run$n.pid"
                i=0
                if [ "$n" = 1 ]; then
                    j=0
                    while [ "$2" = job-b ] || [ $j -lt 10 ]; do
                        i=$((i + 1)); echo "$2 run1 tick $i"; sleep 0.1
                        if [ -f "$D/paused" ]; then j=$((j + 1)); fi
                    done
                elif [ "$2" = job-b ]; then
                    while [ ! -f "$D/release" ]; do sleep 0.1; done
                fi
                echo "$2 run$n done"
                printf '%%s' "run$n" > output/final_video.mp4
            """ % marker_dir)
            pipeline = {"default_backend": "command", "command": [script, "{config}", "{prompt}", "{workspace}"]}
            with h.Cluster(pg, workers=2, pipeline=pipeline, start=False,
                           service={"lease_seconds": 3, "cancel_grace_seconds": GRACE},
                           worker_service={"workers": 2}) as cl:
                api, w1, w2 = cl.api, cl.workers[0], cl.workers[1]
                api.start()
                w1.start()
                ids = {}
                for p in ("job-a", "job-b"):
                    status, _, job = api.json("POST", "/v1/jobs", {"prompt": p})
                    c.eq(status, 202, "POST %s answers 202" % p)
                    ids[p] = job["id"]
                pid_a, pid_b = (h.wait_for(lambda: h.read_pid(os.path.join(marker_dir, p + ".run1.pid")), 20)
                                for p in ("job-a", "job-b"))
                if not c.check(pid_a and pid_b, "both first runs started on worker-1"):
                    return
                leftovers += [pid_a, pid_b]
                for p in ids:
                    j = api.json("GET", "/v1/jobs/" + ids[p])[2]
                    c.eq((j.get("node"), j.get("attempts")), ("worker-1", 1), "%s runs on worker-1, attempt 1" % p)
                w2.start()
                time.sleep(0.5)  # a few lines reach the store
                os.kill(w1.proc.pid, signal.SIGSTOP)
                paused = w1.proc.pid
                stopped_at = time.monotonic()
                with open(os.path.join(marker_dir, "paused"), "w"):
                    pass
                try:
                    resumed = paused_part(c, api, w1, ids, marker_dir, pid_a, pid_b, stopped_at)
                finally:
                    if paused:
                        os.kill(paused, signal.SIGCONT)
                        paused = None
                if resumed:
                    resumed_part(c, api, w1, ids, marker_dir, pid_b, cl.storage_path, *resumed)
    finally:
        if paused:
            os.kill(paused, signal.SIGCONT)
        for pid in leftovers:
            if pid and h.pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(marker_dir, ignore_errors=True)


def paused_part(c, api, w1, ids, marker_dir, pid_a, pid_b, stopped_at):
    """While worker-1 is stopped: the takeover. Returns (logs before,
    artifact status before) when it happened, else None."""

    def taken_over():
        a = api.json("GET", "/v1/jobs/" + ids["job-a"])[2]
        b = api.json("GET", "/v1/jobs/" + ids["job-b"])[2]
        if (a.get("status"), a.get("node")) == ("finished", "worker-2") and \
                b.get("node") == "worker-2" and b.get("status") in ("started", "progress") and \
                h.read_pid(os.path.join(marker_dir, "job-b.run2.pid")):
            return a, b
        return None
    over = h.wait_for(taken_over, 25, interval=0.1)
    if not c.check(over, "while worker-1 is paused, worker-2 finishes job A and runs job B"):
        return None
    print("       measured: taken over %.1f s after SIGSTOP (lease_seconds 3)"
          % (time.monotonic() - stopped_at), flush=True)
    c.eq(over[0].get("attempts"), 2, "job A's second attempt finished")
    c.eq(over[1].get("attempts"), 2, "job B runs its second attempt")
    c.check(h.pid_alive(pid_b), "job B's stale first run still runs while worker-1 is paused")
    before = {p: first_run_lines(api, ids[p]) for p in ids}
    art_before = api.request("GET", "/v1/jobs/%s/artifact" % ids["job-a"])[0]
    c.eq(art_before, 200, "job A's artifact is there")
    time.sleep(0.5)  # the stale B run prints a few more lines into its pipe

    c.check(h.pid_alive(pid_b), "job B's stale first run is still alive just before SIGCONT")
    return before, art_before


def artifact_text(storage_path, job_id):
    """The content of the job's artifact file(s) in the shared local storage."""
    found = glob.glob(os.path.join(storage_path, "**", job_id, "final_video.mp4"), recursive=True)
    texts = []
    for path in found:
        with open(path, encoding="utf-8", errors="replace") as f:
            texts.append(f.read())
    return texts


def resumed_part(c, api, w1, ids, marker_dir, pid_b, storage_path, before, art_before):
    """After SIGCONT: worker-1's late writes change nothing; it stops B's stale run."""
    resumed_at = time.monotonic()
    gone = h.wait_for(lambda: not h.pid_alive(pid_b), GRACE + 4, interval=0.05)
    took = time.monotonic() - resumed_at
    print("       measured: job B's stale run stopped %.4f s after SIGCONT" % took, flush=True)
    c.check(gone and took <= GRACE + 2,
            "worker-1 stops job B's stale run within cancel_grace_seconds + 2 s of SIGCONT (%.2f s)" % took)
    c.check(h.wait_for(lambda: "stopping a run that lost its job" in w1.log_text(), 5),
            "worker-1 logs \"stopping a run that lost its job\"")
    time.sleep(1.5)  # whatever worker-1 still had to write, it has tried by now

    a = api.json("GET", "/v1/jobs/" + ids["job-a"])[2]
    b = api.json("GET", "/v1/jobs/" + ids["job-b"])[2]
    c.eq((a.get("status"), a.get("node"), a.get("attempts")), ("finished", "worker-2", 2),
         "job A is still finished on worker-2 with attempts 2 after worker-1 resumed")
    c.check(b.get("status") in ("started", "progress") and (b.get("node"), b.get("attempts")) == ("worker-2", 2),
            "job B still runs on worker-2, attempt 2, after worker-1 resumed (%s, %s, %s)"
            % (b.get("status"), b.get("node"), b.get("attempts")))
    c.check(h.read_pid(os.path.join(marker_dir, "job-b.run2.pid")) and
            h.pid_alive(h.read_pid(os.path.join(marker_dir, "job-b.run2.pid"))),
            "job B's second run on worker-2 was not disturbed")
    for p in ids:
        after = first_run_lines(api, ids[p])
        extra = sorted(set(after or []) - set(before[p] or []))
        c.check(after is not None and not extra,
                "%s: no line of the stale first run was appended after the rescue (%d before, new: %s)"
                % (p, len(before[p] or []), extra[:3]))
    c.eq(api.request("GET", "/v1/jobs/%s/artifact" % ids["job-a"])[0], art_before,
         "job A's artifact answers as before")
    c.eq(artifact_text(storage_path, ids["job-a"]), ["run2"], "job A's stored artifact is its second run's")

    _, _, text = w1.request("GET", "/metrics", token=False)
    lost = h.metric(text, "reel_leases_lost_total")
    c.check(lost and lost >= 1, "worker-1's reel_leases_lost_total >= 1 (%r)" % lost)
    c.eq(w1.request("GET", "/healthz", token=False)[0], 200, "worker-1 is healthy after resuming")

    with open(os.path.join(marker_dir, "release"), "w"):
        pass
    try:
        done = api.wait_job(ids["job-b"], "finished", timeout=30)
        c.eq((done.get("node"), done.get("attempts")), ("worker-2", 2),
             "released, job B finishes on worker-2 with attempts 2")
        lines = api.json("GET", "/v1/jobs/%s/logs" % ids["job-b"])[2].get("lines", [])
        c.check(any("job-b run2 done" in line for line in lines), "job B's logs end with its second run")
        c.check(not any("job-b run1 done" in line for line in lines), "the stale run never reported done")
    except h.ReeldError as e:
        c.fail("released, job B finishes: %s" % str(e).splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(h.run(body))
