"""The peer's job: run the same pipeline command as reel's `command` backend.

PEER_COMMAND is a JSON list (default ["/bin/true"]); "{prompt}" inside any
argument is replaced by the job's prompt, as reel does for pipeline.command.
Lines "REEL_PROGRESS <n> <stage>" on the command's stdout update the job's
progress and stage, as reel's scheduler does.
"""

import json
import os
import subprocess

from rq import get_current_job

COMMAND = json.loads(os.environ.get("PEER_COMMAND", '["/bin/true"]'))


def run_pipeline(prompt):
    argv = [arg.replace("{prompt}", prompt) for arg in COMMAND]
    job = get_current_job()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          start_new_session=True) as child:
        for raw in child.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("REEL_PROGRESS ") and job is not None:
                parts = line.split(None, 2)
                if len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) <= 100:
                    job.meta["progress"] = int(parts[1])
                    job.meta["stage"] = parts[2] if len(parts) > 2 else None
                    job.save_meta()
        status = child.wait()
    if status != 0:
        raise RuntimeError(f"the pipeline exited with status {status}")
    return {"exit_status": status}
