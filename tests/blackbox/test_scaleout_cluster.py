#!/usr/bin/env python3
"""One API node and three worker nodes on one PostgreSQL (issue 10, SPEC §7).

300 jobs of a short command pipeline are posted to the API node. The pipeline
appends its prompt (unique per job) to one marker file shared by every node
(`>>`, O_APPEND: one short write each) and writes its artifact.

- every job finishes, each ran exactly once (its prompt is in the marker file
  exactly once, and no other line is), attempts 1;
- all three workers took part (the job JSON's `node`), and nothing ran on the
  API node;
- a worker node answers 404 on /v1/jobs and 200 on /healthz, /readyz,
  /metrics; the API node answers /v1/jobs;
- /metrics on each worker: reel_runs_started_total > 0, and with
  lease_seconds 3 (renewals every second) reel_leases_renewed_total > 0 on the
  worker that holds a 4 s job.

How it fails: a claim that two workers could take makes a prompt appear twice;
a worker mode that also serves the API answers /v1/jobs; a worker that never
claims leaves a `node` missing from the set; a lost job never finishes.
"""

import collections
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import reelharness as h  # noqa: E402

N = 300


def body(c):
    with pgserver.PgServer() as pg:
        marker_dir = tempfile.mkdtemp(prefix="reel-markers-")
        marker = os.path.join(marker_dir, "ran.log")
        script = h.write_script(marker_dir, "pipeline.sh", """
            printf '%%s\\n' "$2" >> %s
            case "$2" in slow*) sleep 4 ;; esac
            printf 'x' > output/final_video.mp4
        """ % marker)
        pipeline = {"default_backend": "command", "command": [script, "{config}", "{prompt}", "{workspace}"]}
        with h.Cluster(pg, workers=3, pipeline=pipeline,
                       service={"lease_seconds": 3, "max_queue_depth": 10000},
                       worker_service={"workers": 2}) as cl:
            api = cl.api
            # roles
            for w in cl.workers:
                name = w.config["service"]["node_id"]
                status, _, _ = w.request("GET", "/v1/jobs")
                c.eq(status, 404, "%s: GET /v1/jobs answers 404 on a worker node" % name)
                status, _, _ = w.request("POST", "/v1/jobs", body={"prompt": "nope"})
                c.eq(status, 404, "%s: POST /v1/jobs answers 404 on a worker node" % name)
                for path in ("/healthz", "/readyz", "/metrics"):
                    status, _, _ = w.request("GET", path, token=False)
                    c.eq(status, 200, "%s: GET %s answers 200" % (name, path))
            status, _, page = api.json("GET", "/v1/jobs?limit=1")
            c.eq(status, 200, "the API node answers GET /v1/jobs")

            # a slow job first, so one worker holds a lease long enough to renew it
            ids = {}
            status, _, job = api.json("POST", "/v1/jobs", {"prompt": "slow-0"})
            c.eq(status, 202, "POST of the slow job answers 202")
            ids["slow-0"] = job["id"]
            started = time.monotonic()
            for i in range(N - 1):
                prompt = "job-%04d" % i
                status, _, job = api.json("POST", "/v1/jobs", {"prompt": prompt})
                if status != 202:
                    c.fail("POST %s answered %d: %r" % (prompt, status, job))
                    return
                ids[prompt] = job["id"]
            c.check(True, "%d jobs accepted by the API node" % N)

            # poll each job (the listing is paged; a GET per job is the plain way)
            jobs = {}
            deadline = time.monotonic() + 90
            pending = dict(ids)
            while pending and time.monotonic() < deadline:
                for prompt, job_id in list(pending.items()):
                    status, _, job = api.json("GET", "/v1/jobs/" + job_id)
                    if status == 200 and job.get("status") in h.TERMINAL_STATUSES:
                        jobs[prompt] = job
                        del pending[prompt]
                if pending:
                    time.sleep(0.2)
            elapsed = time.monotonic() - started
            print("       measured: %d jobs done in %.1f s on 3 worker nodes" % (len(jobs), elapsed), flush=True)
            c.eq(sorted(pending), [], "every job reaches a terminal state")
            statuses = collections.Counter(j.get("status") for j in jobs.values())
            c.eq(dict(statuses), {"finished": N}, "every job finished")
            c.eq(sorted(p for p, j in jobs.items() if j.get("attempts") != 1), [], "every job has attempts 1")

            with open(marker, encoding="utf-8") as f:
                lines = f.read().splitlines()
            counts = collections.Counter(lines)
            c.eq(sorted(p for p, n in counts.items() if n > 1), [], "no job's command ran twice")
            c.eq(sorted(set(ids) - set(counts)), [], "every job's command ran")
            c.eq(sorted(set(counts) - set(ids)), [], "the marker file holds nothing else")
            c.eq(len(lines), N, "the marker file has one line per job")

            nodes = collections.Counter(j.get("node") for j in jobs.values())
            print("       jobs per node: %s" % dict(nodes), flush=True)
            c.eq(set(nodes), {"worker-1", "worker-2", "worker-3"}, "all three workers took part, and only they")

            slow_node = jobs.get("slow-0", {}).get("node")
            for w in cl.workers:
                name = w.config["service"]["node_id"]
                _, _, text = w.request("GET", "/metrics", token=False)
                runs = h.metric(text, "reel_runs_started_total")
                c.check(runs and runs > 0, "%s: reel_runs_started_total > 0 (%r)" % (name, runs))
                c.check(runs == nodes.get(name),
                        "%s: reel_runs_started_total equals its jobs (%r, %r)" % (name, runs, nodes.get(name)))
                if name == slow_node:
                    renewed = h.metric(text, "reel_leases_renewed_total")
                    c.check(renewed and renewed >= 2,
                            "%s, which ran the 4 s job, renewed leases (reel_leases_renewed_total %r)" % (name, renewed))
                    lost = h.metric(text, "reel_leases_lost_total")
                    c.check(not lost, "%s lost no lease (%r)" % (name, lost))
            c.check("started" in api.log_text() and "mode" in api.log_text(), "the API node logged its start")
            c.check(h.metric(api.request("GET", "/metrics", token=False)[2], "reel_runs_started_total") in (None, 0.0),
                    "the API node started no run")

        shutil.rmtree(marker_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
