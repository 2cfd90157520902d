#!/usr/bin/env python3
"""tests/blackbox/test_restart.py, unchanged, on PostgreSQL (issue 10: "The existing
durability, restart and API suites pass on PostgreSQL as well as on SQLite").

With REEL_TEST_STORE=postgres every Reeld of the suite gets a fresh database
on one PostgreSQL server started for this process, and service.lease_seconds
3 (reelharness.py); the suite's own checks then run as written, and a last
check makes sure its jobs really were in PostgreSQL.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(h.run_on_postgres("test_restart"))
