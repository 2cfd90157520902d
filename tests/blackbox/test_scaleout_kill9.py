#!/usr/bin/env python3
"""kill -9 of a worker node with runs in flight (issue 10, SPEC §7).

One API node and three worker nodes (2 slots each, lease_seconds 3) share a
PostgreSQL. Six jobs run at once; each first run records its pid and its
process group, starts a grandchild (`sleep 300 &`) and waits until the test
creates a release file. Then the worker holding the most runs is killed with
SIGKILL:

- the process groups of its runs (the pipeline and its grandchild) are gone
  within a second (measured);
- once its leases expire, its jobs are rescued by another node and run again
  on the other workers (the test releases the waiting runs): they finish with
  attempts 2 and `node` naming a surviving worker; every other job finishes
  with attempts 1; each job's command ran once per attempt, and never two
  runs of one job at once;
- a surviving node counts the rescue (reel_rescues_total).

How it fails: a run's group that outlives its reeld (no supervisor) is still
alive after the second; a lease that is never read leaves the jobs running
forever; a rescue that does not count the attempt leaves attempts 1; a rescue
done twice (two nodes acting) shows three runs or attempts 3.
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

N = 6
RUNNING = ("started", "progress")


def group_members(pgid):
    """pids of the live processes whose process group is pgid (from /proc)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            out.append(int(name))
    return out


def body(c):
    marker_dir = tempfile.mkdtemp(prefix="reel-markers-")
    leftovers = []
    try:
        with pgserver.PgServer() as pg:
            script = h.write_script(marker_dir, "pipeline.sh", """
                D=%s
                n=$(cat "$D/$2.count" 2>/dev/null || echo 0)
                n=$((n + 1))
                echo $n > "$D/$2.count"
                printf '%%s %%s start\\n' "$2" "$n" >> "$D/ran.log"
                echo "REEL_PROGRESS 10 waiting"
                if [ "$n" = 1 ]; then
                    sleep 300 &
                    echo $! > "$D/$2.run$n.child"
                    echo $$ > "$D/$2.run$n.pid"
                    while [ ! -f "$D/release" ]; do sleep 0.1; done
                    kill $!
                else
                    echo $$ > "$D/$2.run$n.pid"
                fi
                printf '%%s %%s end\\n' "$2" "$n" >> "$D/ran.log"
                printf 'x' > output/final_video.mp4
            """ % marker_dir)
            pipeline = {"default_backend": "command", "command": [script, "{config}", "{prompt}", "{workspace}"]}
            with h.Cluster(pg, workers=3, pipeline=pipeline,
                           service={"lease_seconds": 3, "cancel_grace_seconds": 1},
                           worker_service={"workers": 2}) as cl:
                api = cl.api
                ids = {}
                for i in range(N):
                    prompt = "long-%d" % i
                    status, _, job = api.json("POST", "/v1/jobs", {"prompt": prompt})
                    c.eq(status, 202, "POST %s answers 202" % prompt)
                    ids[prompt] = job["id"]

                def first_runs():
                    got = {}
                    for p in ids:
                        pid = h.read_pid(os.path.join(marker_dir, p + ".run1.pid"))
                        child = h.read_pid(os.path.join(marker_dir, p + ".run1.child"))
                        if not (pid and child):
                            return None
                        got[p] = (pid, child)
                    return got
                pids = h.wait_for(first_runs, 30)
                if not c.check(pids, "all %d first runs are in flight on 3 workers x 2 slots" % N):
                    return
                leftovers += [p for pair in pids.values() for p in pair]
                groups = {p: os.getpgid(pid) for p, (pid, _) in pids.items()}
                jobs = {p: api.json("GET", "/v1/jobs/" + j)[2] for p, j in ids.items()}
                by_node = collections.defaultdict(list)
                for p, j in jobs.items():
                    by_node[j.get("node")].append(p)
                print("       runs per node before the kill: %s" % dict(by_node), flush=True)
                c.check(all(j.get("status") in RUNNING for j in jobs.values()), "every job is running")
                victim_id = max((n for n in by_node if n), key=lambda n: len(by_node[n]))
                victim = cl.worker(victim_id)
                mine = sorted(by_node[victim_id])
                others = sorted(set(ids) - set(mine))
                if not c.check(victim is not None and mine, "%s runs %s" % (victim_id, mine)):
                    return

                killed_at = time.monotonic()
                victim.kill9()
                gone = h.wait_for(lambda: all(not group_members(groups[p]) for p in mine), 3, interval=0.02)
                took = time.monotonic() - killed_at
                print("       measured: the killed worker's process groups were gone %.2f s after kill -9" % took,
                      flush=True)
                c.check(gone and took <= 1.0,
                        "the process groups of %s's runs are gone within a second of its kill -9 (%.2f s; left: %s)"
                        % (victim_id, took, {p: group_members(groups[p]) for p in mine}))
                for p in others:
                    c.check(group_members(groups[p]), "%s, on a surviving worker, still runs" % p)

                # the rescue: its jobs leave the dead node once the lease expired
                def rescued():
                    for p in mine:
                        j = api.json("GET", "/v1/jobs/" + ids[p])[2]
                        if j.get("node") == victim_id and j.get("status") in RUNNING:
                            return None
                    return True
                c.check(h.wait_for(rescued, 15), "the dead worker's jobs are rescued after their lease expired")
                print("       measured: rescued %.1f s after the kill (lease_seconds 3)" % (time.monotonic() - killed_at),
                      flush=True)

                with open(os.path.join(marker_dir, "release"), "w"):
                    pass
                done = {}
                for p, job_id in ids.items():
                    try:
                        done[p] = api.wait_job(job_id, "finished", timeout=40)
                    except h.ReeldError as e:
                        c.fail("%s finishes: %s" % (p, str(e).splitlines()[0]))
                        done[p] = {}
                for p in mine:
                    c.eq(done[p].get("attempts"), 2, "%s, rescued from the killed worker, has attempts 2" % p)
                    c.check(done[p].get("node") not in (victim_id, None, ""),
                            "%s finished on a surviving worker (%r)" % (p, done[p].get("node")))
                for p in others:
                    c.eq(done[p].get("attempts"), 1, "%s, on a surviving worker, finished with attempts 1" % p)
                    c.eq(done[p].get("node"), jobs[p].get("node"), "%s finished where it ran" % p)

                with open(os.path.join(marker_dir, "ran.log"), encoding="utf-8") as f:
                    lines = f.read().splitlines()
                starts = collections.Counter(line.split()[0] for line in lines if line.endswith(" start"))
                ends = [tuple(line.split()[:2]) for line in lines if line.endswith(" end")]
                for p in mine:
                    c.eq(starts[p], 2, "%s ran twice (once per attempt)" % p)
                    c.eq([e for e in ends if e[0] == p], [(p, "2")], "%s: only its second run got to its end" % p)
                for p in others:
                    c.eq(starts[p], 1, "%s ran once" % p)

                rescues = sum(h.metric(n.request("GET", "/metrics", token=False)[2], "reel_rescues_total") or 0
                              for n in cl.nodes if n is not victim)
                c.check(rescues >= len(mine), "the surviving nodes counted %d rescues (reel_rescues_total %r)"
                        % (len(mine), rescues))
    finally:
        for pid in leftovers:
            if h.pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(marker_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
