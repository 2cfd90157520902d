#!/usr/bin/env python3
"""The job JSON a client reads (issue 9, "Config and messages"):

1. costs are rounded to milliseconds: two `REEL_COST` lines of 0.818 each
   show a total of exactly `1.636` in the body's text, not 1.6359999999999999;
2. `artifact_uri` of a job in local storage is `reel-local:{key}`, which
   names the object and does not pose as a file path (no `file://`, no
   data_dir), in GET /v1/jobs/{id}, the job list and /artifact alike;
3. the job carries its `prompt`, in GET /v1/jobs/{id} and in the list.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

PIPELINE = """#!/bin/sh
echo "REEL_COST plan 0.818"
echo "REEL_COST stitch 0.818"
echo "REEL_COST generate 0.1 usd"
echo "REEL_COST generate 0.2 usd"
printf 'video' > output/final_video.mp4
"""


def body(c):
    with h.Reeld(start=False) as r:
        script = h.write_script(r.tmp, "pipe.sh", PIPELINE)
        r.config["pipeline"] = {"default_backend": "command", "command": [script, "{config}"]}
        r.start()
        prompt = "A lighthouse at dawn, \"quoted\" and ünïcode 🎬"
        status, _, created = r.json("POST", "/v1/jobs", {"prompt": prompt})
        c.eq(status, 202, "POST /v1/jobs answers 202")
        job_id = created["id"]
        done = r.wait_job(job_id, "finished", timeout=60)

        status, _, raw = r.request("GET", "/v1/jobs/" + job_id)
        text = raw.decode("utf-8")
        c.eq(status, 200, "GET /v1/jobs/{id} answers 200")
        c.check('"total":1.636' in text, "the cpu_seconds total is written 1.636 (body: %s)" % text)
        c.check('"total":0.3' in text, "the usd total 0.1 + 0.2 is written 0.3 (body: %s)" % text)
        reals = re.findall(r'[:\[,](-?[0-9]+\.[0-9]+(?:[eE][-+]?[0-9]+)?)', text)
        long_reals = [x for x in reals if len(x.split(".")[1].split("e")[0].split("E")[0]) > 3]
        c.check(not long_reals, "no cost has more than three decimals: %s" % long_reals)
        c.eq(done["cost"]["cpu_seconds"]["stages"], {"plan": 0.818, "stitch": 0.818}, "stages keep their amounts")

        c.eq(done.get("prompt"), prompt, "the job carries its prompt")
        uri = done.get("artifact_uri")
        month = str(done.get("created_at"))[:7]
        c.eq(uri, "reel-local:reel/%s/%s/final_video.mp4" % (month, job_id),
             "artifact_uri is reel-local:{prefix}/{YYYY-MM}/{id}/final_video.mp4")
        c.check(isinstance(uri, str) and not uri.startswith("file:") and not uri.startswith("/")
                and r.data_dir not in uri, "artifact_uri does not pose as a file path: %r" % uri)

        status, _, page = r.json("GET", "/v1/jobs")
        listed = [j for j in page.get("jobs", []) if j.get("id") == job_id]
        c.check(listed and listed[0].get("prompt") == prompt and listed[0].get("artifact_uri") == uri,
                "the job list shows the same prompt and artifact_uri: %r" % (listed[:1],))
        status, _, link = r.json("GET", "/v1/jobs/%s/artifact" % job_id)
        c.eq(status, 200, "GET /artifact answers 200")
        c.eq(link.get("artifact_uri"), uri, "/artifact shows the same artifact_uri")

        # a job that has not run: prompt present, no artifact, no cost
        r.stop()
        r.config["service"]["workers"] = 0
        r.start()
        status, _, queued = r.json("POST", "/v1/jobs", {"prompt": "second"})
        status, _, job = r.json("GET", "/v1/jobs/" + queued["id"])
        c.eq((job.get("prompt"), job.get("artifact_uri"), job.get("cost")), ("second", None, None),
             "a queued job has its prompt, artifact_uri null and cost null")
        json.dumps(job)


if __name__ == "__main__":
    sys.exit(h.run(body))
