#!/usr/bin/env python3
"""Events across nodes: an API node that runs no jobs streams the events of
two worker nodes (issue 11, SPEC §8), all sharing one PostgreSQL.

- a `GET /v1/events` stream on the API node, opened before any job, receives
  every job's life (job.created from the API node; job.started, each stage's
  job.progress, job.log and job.finished written by the workers), and both
  workers appear as the `node` of job.started;
- its ids increase, with no duplicate, and they are exactly the ids a replay
  of the store (`?after=0`, read afterwards) holds: nothing a worker
  committed was skipped by the live fan-out;
- a per-job stream with the WHATWG `eventsource` client, opened on the API
  node while the job runs on a worker, ends after job.finished;
- a second API node (its own process) sees the same events.

How it fails: an API node that learns of other nodes' events only from its
own commits (no NOTIFY, no read from the table) sees job.created and nothing
after it; a hub that advances its cursor past ids still uncommitted on
another node loses events, and the live ids differ from the replay's.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import reelharness as h  # noqa: E402
from sseclients import RawReader, node_client, parse_sse, read_node  # noqa: E402

N = 24
STAGES = ["plan", "keyframes", "clips", "assembly"]


def body(c):
    with pgserver.PgServer() as pg:
        tmp = tempfile.mkdtemp(prefix="reel-events-")
        script = h.write_script(tmp, "pipeline.sh", r"""
            echo "REEL_PROGRESS 10 plan"; echo "planning $2"
            case "$2" in slow*) sleep 2;; esac
            echo "REEL_PROGRESS 30 keyframes"; echo "REEL_PROGRESS 60 clips"
            echo "REEL_PROGRESS 90 assembly"; echo "assembling $2"
            printf 'x' > output/final_video.mp4
        """)
        pipeline = {"default_backend": "command", "command": [script, "{config}", "{prompt}", "{workspace}"]}
        with h.Cluster(pg, workers=2, pipeline=pipeline, service={"max_queue_depth": 10000, "sse_keepalive_seconds": 1},
                       worker_service={"workers": 2}) as cl:
            api = cl.api
            second = h.Reeld(service={"mode": "api", "node_id": "api-2", "storage": {"path": cl.storage_path},
                                      "sse_keepalive_seconds": 1}, pipeline=pipeline, store=pg)
            with second:
                live = RawReader(api, "/v1/events")
                other = RawReader(second, "/v1/events")
                time.sleep(0.5)
                status, _, job = api.json("POST", "/v1/jobs", {"prompt": "slow-one"})
                c.eq(status, 202, "POST of a slow job to the API node")
                slow = job["id"]
                h.wait_for(lambda: api.json("GET", "/v1/jobs/" + slow)[2].get("status") in ("started", "progress"),
                           20)
                follower = node_client(api, "/v1/jobs/%s/events" % slow)
                ids = [slow]
                for i in range(N - 1):
                    status, _, job = api.json("POST", "/v1/jobs", {"prompt": "job-%02d" % i})
                    if status != 202:
                        c.fail("POST job-%02d answered %d" % (i, status))
                        return
                    ids.append(job["id"])
                done = h.wait_for(lambda: all(api.json("GET", "/v1/jobs/" + j)[2].get("status") == "finished"
                                              for j in ids), 60)
                c.check(done, "all %d jobs finished on the workers" % N)

                # the per-job stream through eventsource ended with the job
                events, other_lines = read_node(follower, timeout=30)
                types = [e.get("type") for e in events]
                c.check(types[-1:] == ["job.finished"] and "closed" in other_lines,
                        "eventsource on the API node: the running job's stream ends after job.finished: %s %s"
                        % (types[-3:], other_lines[-2:]))

                # the stream opened before any job saw each job's whole life
                def terminal_seen(reader):
                    got = {e["data"]["job_id"] for e in parse_sse(reader.text())[0] if e["event"] == "job.finished"}
                    return set(ids) <= got
                c.check(h.wait_for(lambda: terminal_seen(live), 20), "the API node's /v1/events saw every job finish")
                c.check(h.wait_for(lambda: terminal_seen(other), 20), "a second API node's /v1/events did too")
                live.stop()
                other.stop()
                seen = parse_sse(live.text())[0]
                by_job = {}
                for e in seen:
                    by_job.setdefault(e["data"]["job_id"], []).append(e)
                complete = 0
                nodes = set()
                for j in ids:
                    evs = by_job.get(j, [])
                    t = [e["event"] for e in evs]
                    stages = [e["data"]["data"].get("stage") for e in evs if e["event"] == "job.progress"]
                    logs = [e["data"]["data"]["line"] for e in evs if e["event"] == "job.log"]
                    if t[:2] == ["job.created", "job.started"] and t[-1:] == ["job.finished"] and \
                            stages == STAGES and len(logs) == 2:
                        complete += 1
                    for e in evs:
                        if e["event"] == "job.started":
                            nodes.add(e["data"]["data"].get("node"))
                c.eq(complete, N, "jobs whose whole life (created, started, every stage, logs, finished) was streamed")
                c.eq(sorted(nodes), ["worker-1", "worker-2"], "job.started came from both workers")
                live_ids = [int(e["id"]) for e in seen]
                c.check(live_ids == sorted(set(live_ids)), "live ids increase with no duplicate")
                # a replay of the whole store, read now, holds the same ids
                replay = RawReader(api, "/v1/events?after=0")
                last = str(live_ids[-1]) if live_ids else "0"
                h.wait_for(lambda: ("id: %s\n" % last).encode() in replay.buf, 20)
                replay.stop()
                replay_ids = [int(e["id"]) for e in parse_sse(replay.text())[0] if int(e["id"]) <= live_ids[-1]]
                c.eq(live_ids, replay_ids, "the live stream skipped no committed event (same ids as a replay)")
                other_ids = [int(e["id"]) for e in parse_sse(other.text())[0] if int(e["id"]) <= live_ids[-1]]
                c.eq(other_ids, live_ids, "the second API node streamed the same events")
                c.eq(api.log_text().count("event stream cut off"), 0, "no stream was cut off")


if __name__ == "__main__":
    sys.exit(h.run(body))
