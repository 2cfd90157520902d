#!/usr/bin/env python3
"""reeld notices its data_dir or database going away (issue 9, "Jobs that must
never be stranded", point 3).

1. `rm -rf data_dir` under a running reeld: within a few seconds POST
   /v1/jobs answers 503 (with Retry-After), /readyz is not ready, and the log
   says data_dir was removed; nothing is accepted into the deleted database.
   A second reeld on the same data_dir path (made again) refuses to start,
   naming the first one.
2. Only the database file deleted (data_dir kept): the next POST answers 503
   instead of committing into a deleted file.
3. A second reeld on a data_dir in use refuses to start (the lock) and says so.

On the baseline, POST still answered 202 after `rm -rf data_dir`, and a
second reeld started on the recreated data_dir.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402


def second_reeld(r):
    """Starts another reeld with r's config on another port; returns (exit
    status or None if it kept running, its output)."""
    cfg = h.merge(r.config, {"service": {"listen": "127.0.0.1:%d" % h.free_port()}})
    path = os.path.join(r.tmp, "second.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(h.to_yaml(cfg))
    p = subprocess.Popen([r.binary, "--config", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, cwd=r.tmp)
    try:
        code = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        code = None
    return code, p.stdout.read().decode(errors="replace")


def refused(r):
    status, headers, _ = r.json("POST", "/v1/jobs", {"prompt": "after"}, timeout=5)
    return (status, headers) if status != 202 else None


def data_dir_removed(c):
    with h.Reeld(service={"workers": 0}) as r:
        status, _, _ = r.json("POST", "/v1/jobs", {"prompt": "before"})
        c.eq(status, 202, "POST answers 202 before data_dir is removed")
        shutil.rmtree(r.data_dir)
        got = h.wait_for(lambda: refused(r), 5, interval=0.2)
        c.check(got is not None and got[0] == 503,
                "after rm -rf data_dir, POST /v1/jobs answers 503 (got %r)" % (got and got[0]))
        c.check(got is not None and "retry-after" in got[1], "that 503 carries Retry-After")
        status, _, value = r.json("GET", "/readyz", token=False)
        c.eq(status, 503, "/readyz is not ready")
        db = ((value or {}).get("checks") or {}).get("database", "")
        c.check("removed" in db or "deleted" in db, "/readyz says why: %r" % db)
        c.check("was removed while reeld was running" in r.log_text() or "was deleted" in r.log_text(),
                "the log says data_dir was removed")
        code, out = second_reeld(r)
        c.check(code not in (0, None), "a second reeld on the recreated data_dir refuses to start (exit %r)" % code)
        c.check("another reeld" in out, "and says another reeld is using it: %r" % out.strip()[-200:])
        c.check(r.running(), "the first reeld keeps running (not ready) until it is stopped")


def database_deleted(c):
    with h.Reeld(service={"workers": 0}) as r:
        status, _, _ = r.json("POST", "/v1/jobs", {"prompt": "before"})
        c.eq(status, 202, "POST answers 202 before the database is deleted")
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(os.path.join(r.data_dir, "reel.db" + suffix))
            except FileNotFoundError:
                pass
        status, headers, _ = r.json("POST", "/v1/jobs", {"prompt": "after"})
        c.eq(status, 503, "after the database file is deleted, the next POST answers 503, not 202")
        status, _, value = r.json("GET", "/readyz", token=False)
        c.eq(status, 503, "/readyz is not ready")
        c.check("database file" in r.log_text(), "the log names the database file")


def data_dir_in_use(c):
    with h.Reeld(service={"workers": 0}) as r:
        code, out = second_reeld(r)
        c.check(code not in (0, None), "a second reeld on a data_dir in use refuses to start (exit %r)" % code)
        c.check("another reeld" in out and str(r.proc.pid) in out,
                "it names the reeld holding data_dir (pid %d): %r" % (r.proc.pid, out.strip()[-200:]))
        status, _, _ = r.json("POST", "/v1/jobs", {"prompt": "still"})
        c.eq(status, 202, "the first reeld still accepts work")


def body(c):
    data_dir_removed(c)
    database_deleted(c)
    data_dir_in_use(c)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
