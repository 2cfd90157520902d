#!/usr/bin/env python3
"""The job store conformance suite (tests/unit/test_store_conformance.c) on a
real PostgreSQL.

The unit test unit/test_store_conformance runs the suite on SQLite; this runs
the SAME binary with REEL_TEST_PG_URL naming a fresh database of a PostgreSQL
server started for it (pgserver.py), so both backends pass the same checks:
every store function, savepoint isolation, failed commits, fencing, leases and
their rescue, claim order, and two connections claiming at once.

It passes when the binary exits 0; its output is printed either way. Without
PostgreSQL installed it FAILS (CI installs it: scripts/install-deps.sh --test).
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402
import reelharness as h  # noqa: E402


def binary():
    path = os.path.join(h.BUILD_DIR, "test_store_conformance")
    return path if os.access(path, os.X_OK) else None


def body(c):
    exe = binary()
    if not c.check(exe is not None, "the suite is built (%s/test_store_conformance)" % h.BUILD_DIR):
        return
    if not c.check(pgserver.available(),
                   "PostgreSQL is installed (Debian package postgresql: scripts/install-deps.sh --test)"):
        return
    with pgserver.PgServer() as pg:
        pg.psql("CREATE DATABASE reel_conformance OWNER reel", db="postgres")
        url = pg.url.rsplit("/", 1)[0] + "/reel_conformance"
        env = dict(os.environ, REEL_TEST_PG_URL=url)
        try:
            run = subprocess.run([exe], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=240)
            out, rc = run.stdout, run.returncode
        except subprocess.TimeoutExpired as e:  # its stdout so far (bytes, whatever text= said)
            partial = e.stdout or b""
            out = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
            rc = None
            print("the suite did not finish within 240 s", flush=True)
        print(out, flush=True)
        c.check("job store conformance on postgres" in out, "the suite ran on PostgreSQL")
        c.eq(rc, 0, "the conformance suite passes on PostgreSQL (exit status)")
        last = [line for line in out.splitlines() if line.endswith(" failed")]
        c.check(last and last[-1].endswith(" 0 failed"), "its closing line: %s" % (last[-1] if last else "none"))
        if rc != 0:
            print("--- postgres.log (tail) ---\n" + "\n".join(pg.log_text().splitlines()[-40:]), flush=True)


if __name__ == "__main__":
    raise SystemExit(h.run(body))
