#!/usr/bin/env python3
"""Restarting the API node while workers run (issue 10: "Start-up recovery is
that same operation: an API node that restarts must not touch jobs that live
workers hold").

One API node and two worker nodes (2 slots each, lease_seconds 3) share a
PostgreSQL. Four jobs run (each waits for a release file, printing a line
every 0.2 s). The API node is stopped with SIGTERM and started again, then
killed with SIGKILL and started again, each time while the jobs run:

- after each restart every job is still running on the same worker, attempt 1,
  and its command ran once;
- released, every job finishes with attempts 1 on the worker that started it,
  each command ran exactly once, and the logs (kept in the database) hold the
  lines printed while the API node was down;
- a job posted after the restarts runs and finishes.

How it fails: an API node whose start-up recovery requeues every running job
(the single-node rule) or whose shutdown requeues jobs it does not run makes
the jobs run twice with attempts 2.
"""

import collections
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import reelharness as h  # noqa: E402

RUNNING = ("started", "progress")


def body(c):
    marker_dir = tempfile.mkdtemp(prefix="reel-markers-")
    leftovers = []
    try:
        with pgserver.PgServer() as pg:
            script = h.write_script(marker_dir, "pipeline.sh", """
                D=%s
                echo "$2" >> "$D/ran.log"
                echo $$ > "$D/$2.pid"
                i=0
                while [ ! -f "$D/release" ]; do i=$((i + 1)); echo "$2 tick $i"; sleep 0.2; done
                printf 'x' > output/final_video.mp4
            """ % marker_dir)
            pipeline = {"default_backend": "command", "command": [script, "{config}", "{prompt}", "{workspace}"]}
            with h.Cluster(pg, workers=2, pipeline=pipeline, service={"lease_seconds": 3},
                           worker_service={"workers": 2}) as cl:
                api = cl.api
                prompts = ["held-%d" % i for i in range(4)]
                ids = {}
                for p in prompts:
                    status, _, job = api.json("POST", "/v1/jobs", {"prompt": p})
                    c.eq(status, 202, "POST %s answers 202" % p)
                    ids[p] = job["id"]
                pids = {p: h.wait_for(lambda: h.read_pid(os.path.join(marker_dir, p + ".pid")), 20) for p in prompts}
                if not c.check(all(pids.values()), "all four jobs run on the two workers"):
                    return
                leftovers.extend(pids.values())
                first = {p: api.json("GET", "/v1/jobs/" + ids[p])[2] for p in prompts}
                where = {p: first[p].get("node") for p in prompts}
                print("       jobs per worker: %s" % dict(collections.Counter(where.values())), flush=True)

                for how in ("SIGTERM", "SIGKILL"):
                    if how == "SIGTERM":
                        code = api.stop()
                        c.eq(code, 0, "the API node exits 0 on SIGTERM")
                    else:
                        api.kill9()
                    time.sleep(4.5)  # longer than a lease: the workers must keep renewing on their own
                    api.start()
                    time.sleep(1.5)  # the restarted node's start-up recovery and a maintenance round have run
                    now = {p: api.json("GET", "/v1/jobs/" + ids[p])[2] for p in prompts}
                    c.eq({p: (j.get("status") in RUNNING, j.get("node"), j.get("attempts")) for p, j in now.items()},
                         {p: (True, where[p], 1) for p in prompts},
                         "after the API node's %s and restart every job still runs where it did, attempt 1" % how)
                    c.check(all(h.pid_alive(pid) for pid in pids.values()),
                            "after the API node's %s every job's first process still runs" % how)

                with open(os.path.join(marker_dir, "release"), "w"):
                    pass
                for p in prompts:
                    try:
                        done = api.wait_job(ids[p], "finished", timeout=30)
                        c.eq((done.get("attempts"), done.get("node")), (1, where[p]),
                             "%s finishes with attempts 1 on %s" % (p, where[p]))
                    except h.ReeldError as e:
                        c.fail("%s finishes: %s" % (p, str(e).splitlines()[0]))
                with open(os.path.join(marker_dir, "ran.log"), encoding="utf-8") as f:
                    ran = collections.Counter(f.read().split())
                c.eq(dict(ran), {p: 1 for p in prompts}, "each job's command ran exactly once")
                status, _, logs = api.json("GET", "/v1/jobs/%s/logs?tail=10000" % ids[prompts[0]])
                ticks = [line for line in (logs or {}).get("lines", []) if " tick " in line]
                c.check(status == 200 and len(ticks) >= 40,
                        "the job's logs hold the lines printed while the API node was down (%d lines)" % len(ticks))
                for w in cl.workers:
                    lost = h.metric(w.request("GET", "/metrics", token=False)[2], "reel_leases_lost_total")
                    c.check(not lost, "%s lost no lease (%r)" % (w.config["service"]["node_id"], lost))

                status, _, job = api.json("POST", "/v1/jobs", {"prompt": "after"})
                c.eq(status, 202, "the restarted API node accepts a job")
                try:
                    api.wait_job(job["id"], "finished", timeout=30)
                    c.check(True, "a job posted after the restarts finishes")
                except h.ReeldError as e:
                    c.fail("a job posted after the restarts finishes: %s" % str(e).splitlines()[0])
    finally:
        for pid in leftovers:
            if pid and h.pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(marker_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
