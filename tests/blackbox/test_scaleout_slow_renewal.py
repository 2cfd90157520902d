#!/usr/bin/env python3
"""A lease renewal slower than the renewal period does not cost the run its
lease (issue 10: "workers renew them in batches every lease_seconds/3").

One API node and one worker node (lease_seconds 3: a renewal every 1 s; a
run stops when no renewal lands within 2.7 s of being sent) share a
PostgreSQL in which a trigger makes every lease renewal of the jobs table
take 1.3 s (pg_sleep in a BEFORE UPDATE trigger that fires only when
lease_expires_ms changes and the status does not). One job runs for 8 s.

- the job finishes on worker-1 with attempts 1;
- the worker's reel_leases_lost_total stays 0, and at least three renewals
  went through the slow trigger (so the store really was that slow).

How it fails: a worker that, finding its renewal still in flight at a tick,
waits for the next tick sends the second renewal 2 s after the first and it
lands at 3.3 s, past the run's 2.7 s deadline: the run is stopped, the job
is rescued (attempts 2) and reel_leases_lost_total counts it. Renewing as
soon as the slow one returns (at 1.3 s, landing at 2.6 s) keeps the lease.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import reelharness as h  # noqa: E402

SLOW_TRIGGER = """
CREATE TABLE slow_renewals (at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION slow_renewal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = NEW.status AND OLD.lease_expires_ms IS DISTINCT FROM NEW.lease_expires_ms THEN
    INSERT INTO slow_renewals DEFAULT VALUES;
    PERFORM pg_sleep(1.3);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER slow_renewal BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION slow_renewal();
"""


def body(c):
    work = tempfile.mkdtemp(prefix="reel-slow-renewal-")
    try:
        with pgserver.PgServer() as pg:
            script = h.write_script(work, "pipeline.sh", """
                i=0
                while [ $i -lt 16 ]; do i=$((i + 1)); echo "tick $i"; sleep 0.5; done
                printf x > output/final_video.mp4
            """)
            pipeline = {"default_backend": "command", "command": [script, "{config}", "{prompt}"]}
            with h.Cluster(pg, workers=1, pipeline=pipeline, start=False, service={"lease_seconds": 3},
                           worker_service={"workers": 1}) as cl:
                api, w = cl.api, cl.workers[0]
                api.start()  # creates the schema
                pg.psql(SLOW_TRIGGER)
                w.start()
                status, _, job = api.json("POST", "/v1/jobs", {"prompt": "a slow store"})
                if not c.eq(status, 202, "POST answers 202"):
                    return
                done = api.wait_job(job["id"], h.TERMINAL_STATUSES, timeout=60)
                c.eq((done.get("status"), done.get("node"), done.get("attempts")), ("finished", "worker-1", 1),
                     "the job finished on worker-1 at its first attempt")
                text = w.request("GET", "/metrics", token=False)[2]
                lost = h.metric(text, "reel_leases_lost_total")
                renewed = h.metric(text, "reel_leases_renewed_total")
                slow = int(pg.psql("SELECT count(*) FROM slow_renewals").strip() or 0)
                print("       measured: %d renewals took 1.3 s each; worker renewed %s, lost %s" % (slow, renewed, lost),
                      flush=True)
                c.check(slow >= 3, "at least three renewals went through the slow trigger (%d)" % slow)
                c.eq(lost, 0, "the worker lost no lease")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
