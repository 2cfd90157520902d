"""The peer's job: run the same pipeline command as reel's `command` backend.

PEER_COMMAND is a JSON list (default ["/bin/true"]); "{prompt}" and
"{workspace}" inside any argument are replaced as reel does for
pipeline.command. The command runs in a fresh workspace directory, removed
afterwards. Lines "REEL_PROGRESS <n> <stage>" on its stdout update the job's
progress and stage, as reel's scheduler does.
"""

import json
import os
import shutil
import subprocess
import tempfile

from rq import get_current_job

COMMAND = json.loads(os.environ.get("PEER_COMMAND", '["/bin/true"]'))


def run_pipeline(prompt):
    job = get_current_job()
    workspace = tempfile.mkdtemp(prefix="peer-job-")
    try:
        argv = [arg.replace("{prompt}", prompt).replace("{workspace}", workspace) for arg in COMMAND]
        with subprocess.Popen(argv, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True) as child:
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
        artifact = os.path.join(workspace, "output", "final_video.mp4")
        if not os.path.isfile(artifact) or os.path.getsize(artifact) == 0:
            raise RuntimeError("the pipeline did not write output/final_video.mp4")
        return {"exit_status": status}
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
