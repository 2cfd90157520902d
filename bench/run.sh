#!/usr/bin/env bash
# bench/run.sh — reel against the seed's stack (FastAPI + Hypercorn + RQ + Redis),
# both on this machine, one after the other, with the same client and loads:
#   (a) durable POST /v1/jobs: wrk, 64 connections, 2 threads, BENCH_DURATION s (default 10)
#   (b) GET /v1/jobs/{id} on one existing job: same load
#   (c) submit-to-process-start latency: 200 jobs at 20/s, workers running
#   (d) idle resident memory after start
# Prints a table and writes JSON to bench/results/latest.json (ignored by git).
# Not part of the test suite. `make bench` runs it. See bench/README.md.
#
# Environment (all optional):
#   BENCH_DURATION   seconds of each wrk run (default 10)
#   BENCH_WARMUP     seconds of the discarded wrk warm-up before (a) (default 2)
#   BENCH_LAT_JOBS   jobs in (c) (default 200)      BENCH_LAT_RATE  their rate per second (default 20)
#   BENCH_OUT        where to write the JSON (default bench/results/latest.json)
#   BENCH_TIMEOUT    seconds after which the run is stopped (default 300, install and build excluded)
#   BENCH_ONLY       "reel" or "peer" to measure one stack only
#   BENCH_REEL_LOG_LEVEL  reel's service.log_level (default info, reel's default, which logs each request;
#                    Hypercorn writes no access log by default)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
LAT_JOBS=${BENCH_LAT_JOBS:-200}
LAT_RATE=${BENCH_LAT_RATE:-20}
OUT=${BENCH_OUT:-$BENCH/results/latest.json}
TIMEOUT=${BENCH_TIMEOUT:-300}
ONLY=${BENCH_ONLY:-}
REEL_LOG_LEVEL=${BENCH_REEL_LOG_LEVEL:-info}   # reel's default: one access-log line per request
CONNS=64
THREADS=2
TOKEN=bench-token-123456
export BENCH_TOKEN=$TOKEN
PY=/usr/bin/python3            # Debian's python, where python3-fastapi & co. live
PEER_HYPERCORN_WORKERS=2       # two cores: one Hypercorn worker process per core
PEER_WORKER_CLASS=uvloop       # the fastest of asyncio/uvloop on this machine (trio is not faster)
PEER_RQ_WORKERS=2              # as many job runners as reel's service.workers: 2

say() { printf '\n== %s\n' "$*" >&2; }

# ---- 1. what the run needs ---------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v curl >/dev/null || need+=(curl)
[ -x "$PY" ] || need+=(python3)
if [ -x "$PY" ]; then
  "$PY" -c 'import fastapi' 2>/dev/null || need+=(python3-fastapi)
  "$PY" -c 'import hypercorn' 2>/dev/null || need+=(python3-hypercorn)
  "$PY" -c 'import rq' 2>/dev/null || need+=(python3-rq)
  "$PY" -c 'import uvloop' 2>/dev/null || need+=(python3-uvloop)
else
  need+=(python3-fastapi python3-hypercorn python3-rq python3-uvloop)
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

REELD=$ROOT/build/reeld
if [ ! -x "$REELD" ]; then
  say "building reel"
  make -C "$ROOT" deps build
elif [ -f "$ROOT/build/CMakeCache.txt" ]; then
  # bring the binary up to date; if the tree does not build right now, measure the one there is
  cmake --build "$ROOT/build" -j 2 --target reeld >/dev/null 2>&1 ||
    echo "bench: warning: reeld does not build from the current tree; measuring the existing build/reeld" >&2
fi

# ---- 2. processes, ports, cleanup ---------------------------------------------------------
WORK=$(mktemp -d /tmp/reel-bench.XXXXXX)
R=$WORK/results
mkdir -p "$R"
# stop_group, cleanup on exit, start LOG CMD...
source "$BENCH/lib/processes.sh"
# the watchdog: a session of its own too, so that cleanup ends its sleep as well
start /dev/null bash -c "sleep $TIMEOUT; kill -TERM $$"
stop() { # stop PGID and forget it
  local g=$1 keep=() x
  stop_group "$g"
  for x in "${GROUPS_STARTED[@]}"; do [ "$x" = "$g" ] || keep+=("$x"); done
  GROUPS_STARTED=("${keep[@]}")
}

free_ports() { # free_ports N: N distinct free loopback TCP ports
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_http() { # wait_http URL PGID: until the server answers anything (10 s at most)
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { echo "bench: the server exited during start" >&2; return 1; }
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" != 000 ] && return 0
    sleep 0.1
  done
  echo "bench: $1 did not answer in 10 s" >&2
  return 1
}

group_mem() { # group_mem PGID...: summed VmRSS and Pss (kB) of every process in those groups
  local g p rss=0 pss=0 v n=0
  for g in "$@"; do
    for p in $(pgrep -g "$g" || true); do
      v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true); rss=$((rss + ${v:-0}))
      v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true); pss=$((pss + ${v:-0}))
      n=$((n + 1))
    done
  done
  echo "{\"rss_kb\": $rss, \"pss_kb\": $pss, \"processes\": $n}"
}

run_wrk() { # run_wrk NAME SCRIPT URL SECONDS
  local name=$1 script=$2 url=$3 secs=$4
  wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s --latency -s "$script" "$url" >"$R/$name.txt" 2>&1 || true
  grep -v '^WRK_JSON ' "$R/$name.txt" | sed 's/^/    /' >&2
  grep '^WRK_JSON ' "$R/$name.txt" | sed 's/^WRK_JSON //' >"$R/$name.json" || echo '{}' >"$R/$name.json"
}

submit_one() { # submit_one BASE_URL: prints the new job's id
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"prompt":"one job to read back"}' "$1/v1/jobs" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

read -r REEL_PORT PEER_PORT REDIS_PORT < <(free_ports 3)
cat /proc/loadavg >"$R/loadavg_start"
# how busy the machine was just before (other work on it skews every figure below)
"$PY" -c '
import time
def idle():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return f[3] + f[4], sum(f)
i0, t0 = idle(); time.sleep(1); i1, t1 = idle()
print(round(100 * (1 - (i1 - i0) / max(1, t1 - t0)), 1))' >"$R/cpu_busy_start"
# where both stacks keep their data, and what one small write + fsync costs there
df -T "$WORK" | awk 'NR == 2 {print $2 " on " $1}' >"$R/data_fs"
"$PY" - "$WORK/fsync-probe" >"$R/fsync_ms" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
t = []
for _ in range(100):
    t0 = time.perf_counter(); os.write(fd, b"x" * 4096); os.fsync(fd); t.append(time.perf_counter() - t0)
os.close(fd); os.unlink(sys.argv[1]); t.sort()
print('{"p50_ms": %.3f, "p99_ms": %.3f}' % (t[50] * 1000, t[98] * 1000))
EOF
STAMPS=$WORK/stamps
mkdir -p "$STAMPS/reel" "$STAMPS/peer"

# ---- 3. reel ---------------------------------------------------------------------------------
reel_config() { # reel_config FILE DATA_DIR WORKERS COMMAND_JSON
  cat >"$1" <<EOF
service:
  listen: 127.0.0.1:$REEL_PORT
  data_dir: $2
  auth: {tokens: [$TOKEN]}
  workers: $3
  max_queue_depth: 10000000
  log_level: $REEL_LOG_LEVEL
pipeline:
  default_backend: command
  command: $4
EOF
  "$REELD" --check-config --config "$1" >/dev/null
}

if [ "$ONLY" != peer ]; then
  BASE=http://127.0.0.1:$REEL_PORT
  say "reel: API only (service.workers: 0, jobs stay queued) on $BASE"
  reel_config "$WORK/reel-api.yaml" "$WORK/reel-api-data" 0 '["/bin/true"]'
  start "$WORK/reel-api.log" "$REELD" --config "$WORK/reel-api.yaml"
  REEL_PG=$LAST
  wait_http "$BASE/healthz" "$REEL_PG"
  sleep 1
  group_mem "$REEL_PG" >"$R/reel_mem_api_idle.json"
  say "reel: (a) POST /v1/jobs, ${WARMUP} s warm-up then ${DURATION} s"
  [ "$WARMUP" -gt 0 ] && wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$BENCH/post_job.lua" "$BASE/v1/jobs" >/dev/null 2>&1 || true
  run_wrk reel_post "$BENCH/post_job.lua" "$BASE/v1/jobs" "$DURATION"
  ID=$(submit_one "$BASE")
  say "reel: (b) GET /v1/jobs/$ID, ${DURATION} s"
  run_wrk reel_get "$BENCH/get_job.lua" "$BASE/v1/jobs/$ID" "$DURATION"
  group_mem "$REEL_PG" >"$R/reel_mem_after_load.json"
  kill -0 "$REEL_PG" 2>/dev/null || echo "bench: reeld is no longer running!" >&2
  grep -c '"level":"error"' "$WORK/reel-api.log" >"$R/reel_api_error_lines" || true
  grep '"level":"\(error\|warn\)"' "$WORK/reel-api.log" | head -n 5 >"$R/reel_api_error_samples" || true
  stop "$REEL_PG"

  say "reel: (c) submit-to-start, service.workers: 2, ${LAT_JOBS} jobs at ${LAT_RATE}/s"
  reel_config "$WORK/reel-run.yaml" "$WORK/reel-run-data" 2 "[\"$BENCH/lib/stamp.sh\", \"$STAMPS/reel\", \"{prompt}\"]"
  start "$WORK/reel-run.log" "$REELD" --config "$WORK/reel-run.yaml"
  REEL_PG=$LAST
  wait_http "$BASE/healthz" "$REEL_PG"
  sleep 1
  group_mem "$REEL_PG" >"$R/reel_mem_idle.json"      # (d): the idle server with its 2 workers
  "$PY" "$BENCH/lib/submit_latency.py" --url "$BASE" --token "$TOKEN" --stamps "$STAMPS/reel" \
    --label reel --jobs "$LAT_JOBS" --rate "$LAT_RATE" >"$R/reel_latency.json"
  cat "$R/reel_latency.json" >&2
  grep -c '"level":"error"' "$WORK/reel-run.log" >"$R/reel_run_error_lines" || true
  stop "$REEL_PG"
fi

# ---- 4. the peer: FastAPI + Hypercorn + RQ + Redis ------------------------------------------
if [ "$ONLY" != reel ]; then
  BASE=http://127.0.0.1:$PEER_PORT
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
  start_redis() { # start_redis DIR: appendonly + appendfsync always, no RDB snapshots
    mkdir -p "$1"
    start "$1.log" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$1" \
      --appendonly yes --appendfsync always --save '' --daemonize no --protected-mode yes
    REDIS_PG=$LAST
    local i; for i in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
    echo "bench: redis did not start" >&2; return 1
  }
  start_hypercorn() {
    start "$WORK/hypercorn.log" env -C "$BENCH/peer" PEER_REDIS_URL="$REDIS_URL" PEER_TOKENS="$TOKEN" \
      "$PY" -m hypercorn --workers "$PEER_HYPERCORN_WORKERS" --worker-class "$PEER_WORKER_CLASS" \
      --bind "127.0.0.1:$PEER_PORT" app:app
    HC_PG=$LAST
    wait_http "$BASE/v1/jobs/none" "$HC_PG"
  }

  say "peer: API only (no rq worker, jobs stay queued) on $BASE, redis on $REDIS_PORT"
  start_redis "$WORK/redis-api"
  start_hypercorn
  sleep 1
  group_mem "$REDIS_PG" "$HC_PG" >"$R/peer_mem_api_idle.json"
  say "peer: (a) POST /v1/jobs, ${WARMUP} s warm-up then ${DURATION} s"
  [ "$WARMUP" -gt 0 ] && wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$BENCH/post_job.lua" "$BASE/v1/jobs" >/dev/null 2>&1 || true
  run_wrk peer_post "$BENCH/post_job.lua" "$BASE/v1/jobs" "$DURATION"
  ID=$(submit_one "$BASE")
  say "peer: (b) GET /v1/jobs/$ID, ${DURATION} s"
  run_wrk peer_get "$BENCH/get_job.lua" "$BASE/v1/jobs/$ID" "$DURATION"
  redis-cli -p "$REDIS_PORT" llen rq:queue:default >"$R/peer_queued" 2>/dev/null || true
  stop "$HC_PG"; stop "$REDIS_PG"

  say "peer: (c) submit-to-start, $PEER_RQ_WORKERS rq workers, ${LAT_JOBS} jobs at ${LAT_RATE}/s"
  start_redis "$WORK/redis-run"
  start_hypercorn
  RQ_PGS=()
  for i in $(seq "$PEER_RQ_WORKERS"); do
    start "$WORK/rq-$i.log" env -C "$BENCH/peer" PEER_COMMAND="[\"$BENCH/lib/stamp.sh\", \"$STAMPS/peer\", \"{prompt}\"]" \
      "$PY" /usr/bin/rq worker --url "$REDIS_URL" --path "$BENCH/peer" --name "bench-$i-$$" default
    RQ_PGS+=("$LAST")
  done
  for i in $(seq 150); do
    [ "$(redis-cli -p "$REDIS_PORT" scard rq:workers 2>/dev/null || echo 0)" -ge "$PEER_RQ_WORKERS" ] && break
    sleep 0.1
  done
  sleep 1
  group_mem "$REDIS_PG" "$HC_PG" "${RQ_PGS[@]}" >"$R/peer_mem_idle.json"   # (d): whole stack, idle
  "$PY" "$BENCH/lib/submit_latency.py" --url "$BASE" --token "$TOKEN" --stamps "$STAMPS/peer" \
    --label peer --jobs "$LAT_JOBS" --rate "$LAT_RATE" >"$R/peer_latency.json"
  cat "$R/peer_latency.json" >&2
  for g in "${RQ_PGS[@]}"; do stop "$g"; done
  stop "$HC_PG"; stop "$REDIS_PG"
fi

# ---- 5. the table and the JSON ----------------------------------------------------------------
cat /proc/loadavg >"$R/loadavg_end"
mkdir -p "$(dirname "$OUT")"
"$PY" "$BENCH/lib/report.py" --results "$R" --root "$ROOT" --out "$OUT" \
  --duration "$DURATION" --conns "$CONNS" --threads "$THREADS" \
  --peer-hypercorn-workers "$PEER_HYPERCORN_WORKERS" --peer-worker-class "$PEER_WORKER_CLASS" \
  --peer-rq-workers "$PEER_RQ_WORKERS" --reel-log-level "$REEL_LOG_LEVEL"
