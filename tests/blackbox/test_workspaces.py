#!/usr/bin/env python3
"""Job workspaces (worker/workspaces.h): each job starts in a fresh directory
holding only an empty output/ and its pipeline_config.yaml, whatever the job
before it left; spares are kept ready in data_dir/work, one per job slot and
no more; a finished job's workspace is gone; a restart removes the spares and
discarded trees an earlier process left.

How it fails: without spares made ahead, work/ holds none while idle (the
first check); a spare reused without being fresh shows the previous job's
files; a pool that does not bound itself leaves more spares than slots.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

SLOTS = 2


def entries(work):
    return sorted(os.listdir(work)) if os.path.isdir(work) else []


def spares(work):
    return [e for e in entries(work) if e.startswith(".spare-")]


def body(c):
    with h.Reeld(start=False) as r:
        seen = os.path.join(r.tmp, "seen")
        os.makedirs(seen)
        script = h.write_script(r.tmp, "pipeline.sh", """
            # what the workspace held when the pipeline started, then litter
            { ls -A; echo --; ls -A output; echo --; cat pipeline_config.yaml; } > %s/"$2"
            mkdir -p junk/deeper && echo left > junk/deeper/file && echo left > output/extra
            printf 'x' > output/final_video.mp4
        """ % seen)
        # keep_failed_workspaces: reeld does not clear work/ at start, so the
        # restart check sees the pool's own clean-up
        r.config = h.merge(r.config, {"service": {"workers": SLOTS, "keep_failed_workspaces": True},
                                      "pipeline": {"default_backend": "command",
                                                   "command": [script, "{config}", "{prompt}"]}})
        r.start()
        work = os.path.join(r.data_dir, "work")
        c.check(h.wait_for(lambda: len(spares(work)) == SLOTS, 10),
                "idle, work/ holds one ready spare per job slot (%r)" % entries(work))

        ids = []
        for i in range(6):
            status, _, job = r.json("POST", "/v1/jobs", {"prompt": "job%d" % i})
            c.eq(status, 202, "POST job%d answers 202" % i)
            ids.append(job["id"])
        for job_id in ids:
            c.eq(r.wait_job(job_id, h.TERMINAL_STATUSES).get("status"), "finished", "%s finished" % job_id)
        for i in range(6):
            with open(os.path.join(seen, "job%d" % i), encoding="utf-8") as f:
                listing, output, config = f.read().split("--\n", 2)
            c.eq(listing.split(), ["output", "pipeline_config.yaml"], "job%d started with only output/ and its config" % i)
            c.eq(output.split(), [], "job%d started with an empty output/" % i)
            c.check("default_backend" in config and "job%d" % i in config,
                    "job%d's pipeline_config.yaml is its own effective config" % i)
        c.check(h.wait_for(lambda: not any(e in entries(work) for e in ids) and
                           not any(e.startswith(".discarded-") for e in entries(work)), 10),
                "finished jobs' workspaces are removed (%r)" % entries(work))
        c.check(h.wait_for(lambda: len(spares(work)) == SLOTS and len(entries(work)) == SLOTS, 10),
                "afterwards work/ holds exactly one spare per slot (%r)" % entries(work))

        r.stop()
        old = spares(work)
        for name in old:  # litter an earlier process's spares, and leave a discarded tree
            with open(os.path.join(work, name, "output", "stale"), "w", encoding="utf-8") as f:
                f.write("from the earlier process")
        os.makedirs(os.path.join(work, ".discarded-99", "sub"))
        r.start()
        def fresh():
            names = entries(work)
            return (len(spares(work)) == SLOTS and len(names) == SLOTS and
                    not any(os.path.exists(os.path.join(work, n, "output", "stale")) for n in names))
        c.check(old and h.wait_for(fresh, 10),
                "after a restart the earlier spares and discarded trees are gone and fresh spares are ready (%r)"
                % entries(work))

if __name__ == "__main__":
    raise SystemExit(h.run(body))
