#!/usr/bin/env python3
"""The Idempotency-Key suite (test_idempotency.py) on PostgreSQL: every reeld
it starts uses a fresh database on one PostgreSQL server, so replays,
conflicts, concurrent duplicates, restarts and expiry go through the
PostgreSQL store's records (ON CONFLICT ... WHERE expired)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reelharness as h  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(h.run_on_postgres("test_idempotency"))
