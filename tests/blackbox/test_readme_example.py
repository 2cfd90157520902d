"""The README's command-backend example, taken literally from README.md.

The README tells a user to set

    pipeline:
      default_backend: command
      command: ["python3", "pipeline.py", "--config", "{config}"]

next to their pipeline.py. The pipeline runs with the job's workspace as its
working directory, so reeld must resolve `pipeline.py` against the directory of
the config file (not reeld's working directory, not the workspace). This test
reads that YAML block out of README.md, puts it in a config file in its own
directory beside a contract-following pipeline.py, starts reeld from another
working directory, and runs a job to `finished`. A relative program path
(`./run.sh`) is resolved the same way, and a missing script fails the job with
a clear message rather than hanging.
"""

import os
import re
import stat

import reelharness as h

PIPELINE_PY = r'''
import argparse, os, sys
ap = argparse.ArgumentParser()
ap.add_argument("--config", required=True)
args = ap.parse_args()
prompt = ""
with open(args.config, encoding="utf-8") as f:
    for line in f:
        if line.startswith("prompt:"):
            prompt = line.split(":", 1)[1].strip()
print("REEL_PROGRESS 50 generation", flush=True)
print("pipeline.py ran from", os.path.dirname(os.path.abspath(__file__)), "for", prompt, flush=True)
os.makedirs("output", exist_ok=True)
with open("output/final_video.mp4", "wb") as out:
    out.write(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
'''


def readme_command_block():
    """The YAML block of README.md that selects the command backend, parsed
    into (default_backend, [command words]) with the README's own words."""
    with open(os.path.join(h.SOURCE_DIR, "README.md"), encoding="utf-8") as f:
        text = f.read()
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        if "default_backend: command" in block:
            m = re.search(r"command:\s*\[(.*)\]", block)
            words = [w.strip().strip('"').strip("'") for w in m.group(1).split(",")]
            return block, words
    raise AssertionError("README.md has no yaml block with default_backend: command")


def run_job(c, r, label):
    status, _, job = r.json("POST", "/v1/jobs", {"prompt": "a lighthouse at dawn"})
    c.eq(status, 202, "%s: POST /v1/jobs answers 202" % label)
    return r.wait_job(job["id"], h.TERMINAL_STATUSES, timeout=60)


def body(c):
    block, words = readme_command_block()
    c.check("pipeline.py" in words and words[0] == "python3",
            "README's example runs python3 pipeline.py (%s)" % words)

    r = h.Reeld(pipeline={"default_backend": "command", "command": words}, start=False)
    with r:
        # The config and pipeline.py live in their own directory; reeld runs
        # from r.tmp, a different working directory.
        project = os.path.join(r.tmp, "my-project")
        os.makedirs(project)
        r.config_path = os.path.join(project, "reel.yaml")
        h.write_script(project, "pipeline.py", PIPELINE_PY)
        r.start()
        done = run_job(c, r, "README example")
        c.eq(done["status"], "finished", "the README's command example finishes a job")
        status, _, logs = r.json("GET", "/v1/jobs/%s/logs" % done["id"])
        text = "\n".join(line.get("line", "") if isinstance(line, dict) else str(line)
                         for line in (logs.get("lines") or logs.get("logs") or []))
        c.check("pipeline.py ran from %s " % project in text,
                "pipeline.py ran from the config's directory (log: %s)" % str(logs)[:300])
        status, _, art = r.json("GET", "/v1/jobs/%s/artifact" % done["id"])
        c.eq(status, 200, "the finished job has an artifact")

        # A relative program path resolves against the config directory too.
        h.write_script(project, "run.sh", "#!/bin/sh\nexec python3 \"$(dirname \"$0\")/pipeline.py\" \"$@\"\n")
        os.chmod(os.path.join(project, "run.sh"), 0o755)
        r.stop()
        r.config["pipeline"]["command"] = ["./run.sh", "--config", "{config}"]
        r.start()
        done = run_job(c, r, "./run.sh")
        c.eq(done["status"], "finished", "a relative program path ./run.sh resolves against the config directory")

        # A script that is not there fails the job with a message naming it.
        r.stop()
        r.config["pipeline"]["command"] = ["python3", "missing.py", "--config", "{config}"]
        r.start()
        done = run_job(c, r, "missing.py")
        c.eq(done["status"], "failed", "a missing pipeline script fails the job")
        c.check("missing.py" in str(done.get("error")), "the error names the missing script: %s" % done.get("error"))


if __name__ == "__main__":
    raise SystemExit(h.run(body))
