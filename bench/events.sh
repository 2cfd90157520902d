#!/usr/bin/env bash
# bench/events.sh — issue 11's benchmark: job events to SSE subscribers and
# webhooks, reel (embedded defaults, one process) against FastAPI + Starlette
# StreamingResponse + Redis pub/sub on uvicorn, in one run:
#   (a) job.created latency (202 -> received, POST sent -> received) p50/p99
#       with 1, 100, 1,000 (and for reel 10,000) subscribers of GET /v1/events
#   (b) memory per idle subscriber (VmRSS with N idle streams, less before)
#   (c) webhook deliveries per second to a local receiver that checks every signature
# Prints a table, appends it to bench/results/events-<UTC date>.txt and writes
# bench/results/events-latest.json. Not part of the test suite (`make bench-events`).
# See bench/README.md, "Events".
#
# Environment (all optional): BENCH_REELD (default build/reeld), BENCH_REEL_SUBS
# (1,100,1000,10000), BENCH_PEER_SUBS (1,100,1000), BENCH_EVENTS (200 per cell),
# BENCH_WARM_EVENTS (10), BENCH_EVENTS_RATE (10 per s), BENCH_HOOK_SECONDS (5),
# BENCH_PEER_WORKERS (2), BENCH_ONLY (a comma list of reel,peer,a,b,c), BENCH_TIMEOUT (420 s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3   # Debian's python, where python3-fastapi & co. live
TIMEOUT=${BENCH_TIMEOUT:-420}

# shellcheck source=lib/need.sh
. "$ROOT/bench/lib/need.sh"
need_cmd wrk wrk
need_cmd redis-server redis-server
need_cmd redis-cli redis-tools
need_cmd cc gcc libc6-dev
[ -x "$PY" ] || need+=(python3)
need_py fastapi:python3-fastapi uvicorn:python3-uvicorn uvloop:python3-uvloop httptools:python3-httptools \
        redis:python3-redis httpx:python3-httpx
need_install

REELD=${BENCH_REELD:-$ROOT/build/reeld}
if [ ! -x "$REELD" ]; then
  echo "bench: $REELD is missing: make build (or set BENCH_REELD)" >&2
  exit 1
fi
# 10,000 streams, the client's and the server's, need more descriptors than the usual 1,024
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# bench/events.py stops everything it started on exit; the timeout is the watchdog
BENCH_REELD=$REELD exec timeout --signal=INT "$TIMEOUT" "$PY" "$ROOT/bench/events.py"
