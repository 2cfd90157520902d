#!/usr/bin/env bash
# bench/scaleout.sh — issue 10's benchmark (reel on PostgreSQL, api/worker roles)
# against seed 002's stack and graphile-worker, in one run on one PostgreSQL 15
# that bench/scaleout.py starts in a temporary directory:
#   (a) durable POST /v1/jobs, wrk -t2 -c64: reel (mode api) vs FastAPI + SQLAlchemy + asyncpg
#   (b) submit -> process start p50, 1 API node + 1 worker node, one job at a time
#   (c) lifecycle jobs/s of no-op command jobs, 1 and 3 worker nodes vs graphile-worker
#   (d) reel's POST on SQLite (as bench/run.sh (a))
# Prints a table, appends it to bench/results/scaleout-<UTC date>.txt and writes
# bench/results/scaleout-latest.json. Not part of the test suite (`make bench-scaleout`).
# See bench/README.md, "Scale-out".
#
# Environment (all optional): BENCH_REELD (default build/reeld), BENCH_DURATION (10),
# BENCH_WARMUP (2), BENCH_LAT_JOBS (100), BENCH_LAT_RATE (10), BENCH_LIFE_JOBS (2000),
# BENCH_LIFE_SLOTS (8), BENCH_LIFE_LIMIT (30 s per lifecycle cell), BENCH_PEER_WORKERS (2),
# BENCH_ONLY (a comma list of a,b,c,d), BENCH_REEL_LOG_LEVEL (info), BENCH_TIMEOUT (420 s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3   # Debian's python, where python3-fastapi & co. live
TIMEOUT=${BENCH_TIMEOUT:-420}

# shellcheck source=lib/need.sh
. "$ROOT/bench/lib/need.sh"
need_cmd wrk wrk
need_cmd psql postgresql-client
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
need_cmd cc gcc libc6-dev
need_cmd node nodejs
need_cmd npm npm
[ -x "$PY" ] || need+=(python3)
need_py fastapi:python3-fastapi sqlalchemy:python3-sqlalchemy asyncpg:python3-asyncpg uvicorn:python3-uvicorn \
        uvloop:python3-uvloop httptools:python3-httptools greenlet:python3-greenlet
need_install

# graphile-worker, exactly as package-lock.json pins it
G=$ROOT/bench/peers/graphile
if [ ! -f "$G/node_modules/graphile-worker/package.json" ]; then
  echo "bench: npm ci in bench/peers/graphile" >&2
  (cd "$G" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

REELD=${BENCH_REELD:-$ROOT/build/reeld}
if [ ! -x "$REELD" ]; then
  echo "bench: $REELD is missing: make build (or set BENCH_REELD)" >&2
  exit 1
fi
# without reel-supervise beside it, reeld re-executes itself for every job's supervisor (much slower)
[ -x "$(dirname "$REELD")/reel-supervise" ] ||
  echo "bench: warning: no reel-supervise beside $REELD: (b) and (c) measure the slower fallback" >&2

# bench/scaleout.py stops everything it started on exit; the timeout is the watchdog
exec timeout --signal=INT "$TIMEOUT" "$PY" "$ROOT/bench/scaleout.py" --reeld "$REELD"
