#!/usr/bin/env python3
"""Jobs are never stranded by a full disk (issue 9, "Jobs that must never be
stranded", points 1 and 2).

The database lives on a real, tiny tmpfs (mounted by the test; it needs root
or CAP_SYS_ADMIN), the workspaces and artifacts on the ordinary disk. With
two jobs running, the tmpfs is filled up; then:

1. the first job's pipeline ends (exit 0): its end cannot be committed. The
   job stays running (nothing is lost), /readyz answers 503 with Retry-After
   and names "disk full", POST /v1/jobs answers 503 with Retry-After, and the
   log says "disk full";
2. a cancel of the second job cannot be recorded: 503 with Retry-After, never
   {"ok": true};
3. once space returns, the first job's end is retried until it lands
   (finished), /readyz is ready again, and the second job's cancel now takes
   effect (canceled).

On the baseline, /readyz stayed 200 and the first job stayed `started` for ever.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

RUNNING = ("started", "progress")


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    rc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", path],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return rc.returncode == 0, rc.stdout.decode(errors="replace").strip()


def fill(directory):
    """Fills the file system of directory; returns the filler's path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return path


def body(c):
    r = h.Reeld(start=False)
    dbfs = os.path.join(r.tmp, "dbfs")
    ok, why = mount_tmpfs(dbfs, "1m")
    if not c.check(ok, "a 1 MiB tmpfs can be mounted for the database (%s)" % (why or "ok")):
        r.close()
        return
    outside = os.path.join(r.tmp, "outside")
    os.makedirs(outside)
    try:
        script = h.write_script(r.tmp, "pipeline.sh", """
            D=%s
            printf 'video' > output/final_video.mp4
            echo "REEL_PROGRESS 50 render"
            touch "$D/$2.started"
            i=0
            while [ ! -e "$D/$2.go" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
            echo "done"
        """ % outside)
        r.config = h.merge(r.config, {
            "service": {"workers": 2, "cancel_grace_seconds": 1, "database": {"path": os.path.join(dbfs, "reel.db")}},
            "pipeline": {"default_backend": "command", "command": [script, "{config}", "{prompt}"]},
        })
        r.start()
        ids = {}
        for p in ("finishes", "cancelme"):
            status, _, job = r.json("POST", "/v1/jobs", {"prompt": p})
            c.eq(status, 202, "POST %s answers 202 before the disk fills" % p)
            ids[p] = job["id"]
        c.check(h.wait_for(lambda: all(os.path.exists(os.path.join(outside, p + ".started")) for p in ids), 20),
                "both pipelines are running")
        status, _, _ = r.json("GET", "/readyz", token=False)
        c.eq(status, 200, "/readyz is ready before the disk fills")

        filler = fill(dbfs)
        open(os.path.join(outside, "finishes.go"), "w").close()
        # the pipeline ends; its end cannot be committed
        c.check(h.wait_for(lambda: "job process ended" in r.log_text(), 10), "the first pipeline ended")

        def not_ready():
            status, headers, value = r.json("GET", "/readyz", token=False)
            return (status, headers, value) if status == 503 else None
        got = h.wait_for(not_ready, 10, interval=0.2)
        if c.check(got is not None, "/readyz answers 503 while the disk is full"):
            _, headers, value = got
            c.check("retry-after" in headers, "the /readyz 503 carries Retry-After")
            db = ((value or {}).get("checks") or {}).get("database", "")
            c.check("disk full" in db, "/readyz names the cause: %r" % db)
        status, headers, value = r.json("POST", "/v1/jobs", {"prompt": "refused"})
        c.eq(status, 503, "POST /v1/jobs answers 503 while the disk is full")
        c.check("retry-after" in headers, "that 503 carries Retry-After (%r)" % headers.get("retry-after"))
        c.check("disk full" in r.log_text(), "the log says the disk is full")

        status, _, job = r.json("GET", "/v1/jobs/" + ids["finishes"])
        c.check(status == 200 and job["status"] in RUNNING,
                "the job whose end was not recorded is still running, not lost (%s)" % (job or {}).get("status"))
        status, headers, value = r.json("POST", "/v1/jobs/%s/cancel" % ids["cancelme"])
        c.eq(status, 503, "a cancel that cannot be recorded answers 503, not ok (%r)" % (value,))
        c.check("retry-after" in headers, "the cancel's 503 carries Retry-After")

        os.unlink(filler)  # space returns
        try:
            done = r.wait_job(ids["finishes"], "finished", timeout=30)
            c.eq(done["progress"], 100, "the end was retried until it landed: finished at 100%")
        except h.ReeldError as e:
            c.fail("the job whose end failed is recorded once space returns: %s" % str(e).splitlines()[0])
        got = h.wait_for(lambda: r.json("GET", "/readyz", token=False)[0] == 200, 10, interval=0.2)
        c.check(got, "/readyz is ready again once a commit succeeds")
        status, _, value = r.json("POST", "/v1/jobs/%s/cancel" % ids["cancelme"])
        c.eq(status, 200, "the cancel now answers ok")
        try:
            job = r.wait_job(ids["cancelme"], "canceled", timeout=15)
            c.eq(job["status"], "canceled", "and takes effect: the job is canceled")
        except h.ReeldError as e:
            c.fail("the cancel takes effect: %s" % str(e).splitlines()[0])
        status, _, _ = r.json("POST", "/v1/jobs", {"prompt": "accepted"})
        c.eq(status, 202, "POST /v1/jobs is accepted again")
    finally:
        if r.running():
            open(os.path.join(outside, "cancelme.go"), "w").close()
            open(os.path.join(outside, "accepted.go"), "w").close()
        r.close(keep=c.failed > 0)
        subprocess.run(["umount", "-l", dbfs], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if c.failed == 0:
            import shutil
            shutil.rmtree(r.tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
