#!/usr/bin/env bash
# bench/protocols.sh — GET /v1/jobs/{id} of one existing job over every protocol reel speaks,
# against the seed's stack (FastAPI + Hypercorn + RQ + Redis, bench/peer) where it can, in one run:
#   HTTP/1.1 cleartext and over TLS   wrk -t2 -c64 --latency -s bench/get_job.lua
#   HTTP/2 over TLS (ALPN h2), h2c     h2load -t2 -c64 -m10 -D, p99 from its --log-file
#   HTTP/3 (reel only)                 8 gtlsclient processes in a loop, each one QUIC connection
#                                      × N requests, the bearer header added by an LD_PRELOAD shim;
#                                      plus the same shape over h2 with nghttp, for a like-for-like ratio
# The client and the server under test share the machine's cores; every cell records the CPU
# the client, the server and everything else used. Prints a table and writes JSON to
# bench/results/protocols-latest.json (ignored by git). Not part of the test suite. See bench/README.md.
#
# Environment (all optional):
#   BENCH_DURATION        seconds of each cell (default 10)
#   BENCH_H3_PROCS        client processes for HTTP/3 and its h2 twin (default 8)
#   BENCH_H3_REQUESTS     requests per connection for those (default 2000)
#   BENCH_PROTOCOLS_OUT   where to write the JSON (default bench/results/protocols-latest.json)
#   BENCH_TIMEOUT         seconds after which the run is stopped (default 300, installs excluded)
#   BENCH_ONLY            "reel" or "peer" to measure one stack only
#   BENCH_REEL_LOG_LEVEL  reel's service.log_level (default info, reel's default: one access-log line
#                         per request, to a file; Hypercorn writes no access log by default)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
DURATION=${BENCH_DURATION:-10}
H3_PROCS=${BENCH_H3_PROCS:-8}
H3_REQUESTS=${BENCH_H3_REQUESTS:-2000}
OUT=${BENCH_PROTOCOLS_OUT:-$BENCH/results/protocols-latest.json}
TIMEOUT=${BENCH_TIMEOUT:-300}
ONLY=${BENCH_ONLY:-}
REEL_LOG_LEVEL=${BENCH_REEL_LOG_LEVEL:-info}
CONNS=64
THREADS=2
STREAMS=10                     # h2load -m: concurrent streams per connection
TOKEN=bench-token-123456
export BENCH_TOKEN=$TOKEN
PY=/usr/bin/python3            # Debian's python, where python3-hypercorn & co. live
PEER_HYPERCORN_WORKERS=2       # as bench/run.sh: one worker process per core
PEER_WORKER_CLASS=uvloop
LIB=$BENCH/lib/protocols.py

say() { printf '\n== %s\n' "$*" >&2; }

# ---- 1. what the run needs ---------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)          # h2load and nghttp
command -v nghttp >/dev/null || need+=(nghttp2-client)
command -v gtlsclient >/dev/null || need+=(ngtcp2-client)
command -v certtool >/dev/null || need+=(gnutls-bin)            # scripts/dev-cert.sh
command -v cc >/dev/null || need+=(gcc)                          # the LD_PRELOAD header shim
[ -f /usr/include/nghttp3/nghttp3.h ] || need+=(libnghttp3-dev)
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
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  say "installing ${need[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# build/reeld as it is (make it first for a current tree); built only when missing
REELD=$ROOT/build/reeld
if [ ! -x "$REELD" ]; then
  say "building reel"
  make -C "$ROOT" deps build
fi

# ---- 2. processes, ports, cleanup (as bench/run.sh) ----------------------------------------
WORK=$(mktemp -d /tmp/reel-bench-protocols.XXXXXX)
R=$WORK/results
mkdir -p "$R"
# stop_group, cleanup on exit, start LOG CMD...
source "$BENCH/lib/processes.sh"
start /dev/null bash -c "sleep $TIMEOUT; kill -TERM $$"   # the watchdog
stop() { # stop PGID and forget it
  local g=$1 keep=() x
  stop_group "$g"
  for x in "${GROUPS_STARTED[@]}"; do [ "$x" = "$g" ] || keep+=("$x"); done
  GROUPS_STARTED=("${keep[@]}")
}

free_ports() { # free_ports N: N distinct loopback ports free for both TCP and UDP (h3 shares the TLS port)
  "$PY" - "$1" <<'EOF'
import socket, sys
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        held.append(t); continue
    held += [t, u]; ports.append(port)
print(" ".join(map(str, ports)))
EOF
}

wait_http() { # wait_http URL PGID: until the server answers anything (10 s at most)
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { echo "bench: the server exited during start" >&2; return 1; }
    [ "$(curl -sk -o /dev/null -w '%{http_code}' "$1" || true)" != 000 ] && return 0
    sleep 0.1
  done
  echo "bench: $1 did not answer in 10 s" >&2
  return 1
}

alive() { # alive PGID WHAT: fail the run if the server is gone (another session may have stopped it)
  kill -0 "$1" 2>/dev/null && return 0
  echo "bench: $2 is no longer running (exited or was signalled from outside the run)" >&2
  return 1
}

submit_one() { # submit_one BASE_URL: prints the new job's id
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"prompt":"bench"}' "$1/v1/jobs" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

check_get() { # check_get LABEL CURL_ARGS... URL: one request; prints the HTTP version, fails on a non-200
  local label=$1 out; shift
  out=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' -H "Authorization: Bearer $TOKEN" "$@" || true)
  echo "    check $label: status ${out% *}, HTTP/${out#* }" >&2
  [ "${out% *}" = 200 ]
}

# The cells. Each runs one client against one server, recording CPU of client, server, others.
cell_wrk() { # cell_wrk NAME URL SERVER_PGIDS [METRICS_URL]
  local name=$1 url=$2 pgids=$3 metrics=${4:-}
  say "$name: wrk -t$THREADS -c$CONNS -d${DURATION}s $url"
  "$PY" "$LIB" measure --name "$name" --results "$R" --server-pgids "$pgids" ${metrics:+--metrics "$metrics"} -- \
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency -s "$BENCH/get_job.lua" "$url"
  grep -v '^WRK_JSON ' "$R/$name.txt" | sed 's/^/    /' >&2
  "$PY" "$LIB" wrk --name "$name" --results "$R"
  sleep 1
}
cell_h2load() { # cell_h2load NAME URL SERVER_PGIDS [METRICS_URL]
  local name=$1 url=$2 pgids=$3 metrics=${4:-}
  say "$name: h2load -t$THREADS -c$CONNS -m$STREAMS -D $DURATION $url"
  "$PY" "$LIB" measure --name "$name" --results "$R" --server-pgids "$pgids" ${metrics:+--metrics "$metrics"} -- \
    h2load -t"$THREADS" -c"$CONNS" -m"$STREAMS" -D "$DURATION" -H "authorization: Bearer $TOKEN" \
    --log-file="$R/$name.log" "$url"
  grep -v '^progress:' "$R/$name.txt" | sed 's/^/    /' >&2
  "$PY" "$LIB" h2load --name "$name" --results "$R"
  rm -f "$R/$name.log"
  sleep 1
}

read -r REEL_HTTP REEL_TLS PEER_HTTP PEER_TLS REDIS_PORT < <(free_ports 5)
cat /proc/loadavg >"$R/loadavg_start"
"$PY" -c '
import time
def idle():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return f[3] + f[4], sum(f[:8])
i0, t0 = idle(); time.sleep(1); i1, t1 = idle()
print(round(100 * (1 - (i1 - i0) / max(1, t1 - t0)), 1))' >"$R/cpu_busy_start"

CERTS=$WORK/certs
bash "$ROOT/scripts/dev-cert.sh" "$CERTS" >/dev/null

# ---- 3. reel ---------------------------------------------------------------------------------
if [ "$ONLY" != peer ]; then
  # the LD_PRELOAD library that adds the bearer header to gtlsclient's requests (the tests' own)
  "$PY" - "$ROOT/tests/blackbox" "$WORK/h3headers.c" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from h3client import SHIM_C
open(sys.argv[2], "w").write(SHIM_C)
EOF
  cc -shared -fPIC -O2 -o "$WORK/h3headers.so" "$WORK/h3headers.c" -ldl

  cat >"$WORK/reel.yaml" <<EOF
service:
  listen: [http://127.0.0.1:$REEL_HTTP, https://127.0.0.1:$REEL_TLS, h3://127.0.0.1:$REEL_TLS]
  tls: {cert_file: $CERTS/server.pem, key_file: $CERTS/server-key.pem}
  data_dir: $WORK/reel-data
  auth: {tokens: [$TOKEN]}
  workers: 0
  max_queue_depth: 10000000
  log_level: $REEL_LOG_LEVEL
pipeline:
  default_backend: command
  command: ["/bin/true"]
EOF
  "$REELD" --check-config --config "$WORK/reel.yaml" >/dev/null
  say "reel: http://127.0.0.1:$REEL_HTTP (HTTP/1.1 + h2c), https:// and h3:// on $REEL_TLS; service.workers: 0"
  start "$WORK/reel.log" "$REELD" --config "$WORK/reel.yaml"
  REEL_PG=$LAST
  wait_http "http://127.0.0.1:$REEL_HTTP/healthz" "$REEL_PG"
  ID=$(submit_one "http://127.0.0.1:$REEL_HTTP")
  P=/v1/jobs/$ID
  H=http://127.0.0.1:$REEL_HTTP
  S=https://127.0.0.1:$REEL_TLS
  METRICS=$H/metrics
  check_get "HTTP/1.1" --http1.1 "$H$P"
  check_get "HTTP/1.1+TLS" --http1.1 --cacert "$CERTS/ca.pem" "$S$P"
  check_get "h2" --http2 --cacert "$CERTS/ca.pem" "$S$P"
  check_get "h2c" --http2-prior-knowledge "$H$P"
  sleep 1

  cell_wrk reel_h1 "$H$P" "$REEL_PG" "$METRICS";            alive "$REEL_PG" reeld
  cell_wrk reel_h1tls "$S$P" "$REEL_PG" "$METRICS";         alive "$REEL_PG" reeld
  cell_h2load reel_h2 "$S$P" "$REEL_PG" "$METRICS";         alive "$REEL_PG" reeld
  cell_h2load reel_h2c "$H$P" "$REEL_PG" "$METRICS";        alive "$REEL_PG" reeld

  say "reel_h3: $H3_PROCS × gtlsclient (one QUIC connection × $H3_REQUESTS requests each, in a loop) for ${DURATION}s"
  echo "    gtlsclient is ngtcp2's example client, a debug tool: run with -q (no per-packet log), it reports no" >&2
  echo "    per-request timing; requests are counted by reel's /metrics (200s on GET /v1/jobs/{id})" >&2
  "$PY" "$LIB" parallel --name reel_h3 --results "$R" --server-pgids "$REEL_PG" --metrics "$METRICS" \
    --procs "$H3_PROCS" --duration "$DURATION" --per-run "$H3_REQUESTS" \
    --env LD_PRELOAD="$WORK/h3headers.so" --env "REEL_H3_EXTRA_HEADERS=authorization: Bearer $TOKEN" -- \
    gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump -q --timeout=10s \
    -n "$H3_REQUESTS" 127.0.0.1 "$REEL_TLS" "https://127.0.0.1:$REEL_TLS$P"
  alive "$REEL_PG" reeld
  sleep 1
  # is that figure limited by the number of clients? the same with twice as many, half as long
  say "reel_h3x2: the same with $((2 * H3_PROCS)) gtlsclient processes for $(( (DURATION + 1) / 2 ))s (a check: does it scale with clients?)"
  "$PY" "$LIB" parallel --name reel_h3x2 --results "$R" --server-pgids "$REEL_PG" --metrics "$METRICS" \
    --procs "$((2 * H3_PROCS))" --duration "$(( (DURATION + 1) / 2 ))" --per-run "$H3_REQUESTS" \
    --env LD_PRELOAD="$WORK/h3headers.so" --env "REEL_H3_EXTRA_HEADERS=authorization: Bearer $TOKEN" -- \
    gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump -q --timeout=10s \
    -n "$H3_REQUESTS" 127.0.0.1 "$REEL_TLS" "https://127.0.0.1:$REEL_TLS$P"
  alive "$REEL_PG" reeld
  sleep 1
  say "reel_h2same: the same shape over h2 — $H3_PROCS × nghttp (one TLS connection × $H3_REQUESTS requests each)"
  "$PY" "$LIB" parallel --name reel_h2same --results "$R" --server-pgids "$REEL_PG" --metrics "$METRICS" \
    --procs "$H3_PROCS" --duration "$DURATION" --per-run "$H3_REQUESTS" -- \
    nghttp -n -m "$H3_REQUESTS" -H "authorization: Bearer $TOKEN" "$S$P"
  alive "$REEL_PG" reeld
  stop "$REEL_PG"
fi

# ---- 4. the peer: FastAPI + Hypercorn (+ Redis, which holds the job) -------------------------
if [ "$ONLY" != reel ]; then
  mkdir -p "$WORK/redis"
  start "$WORK/redis.log" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" \
    --appendonly yes --appendfsync always --save '' --daemonize no --protected-mode yes
  REDIS_PG=$LAST
  for i in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  say "peer: hypercorn ($PEER_HYPERCORN_WORKERS × $PEER_WORKER_CLASS) http://127.0.0.1:$PEER_HTTP and https://127.0.0.1:$PEER_TLS, redis on $REDIS_PORT"
  start "$WORK/hypercorn.log" env -C "$BENCH/peer" PEER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" PEER_TOKENS="$TOKEN" \
    "$PY" -m hypercorn --workers "$PEER_HYPERCORN_WORKERS" --worker-class "$PEER_WORKER_CLASS" \
    --certfile "$CERTS/server.pem" --keyfile "$CERTS/server-key.pem" \
    --bind "127.0.0.1:$PEER_TLS" --insecure-bind "127.0.0.1:$PEER_HTTP" app:app
  HC_PG=$LAST
  wait_http "http://127.0.0.1:$PEER_HTTP/v1/jobs/none" "$HC_PG"
  wait_http "https://127.0.0.1:$PEER_TLS/v1/jobs/none" "$HC_PG"
  ID=$(submit_one "http://127.0.0.1:$PEER_HTTP")
  P=/v1/jobs/$ID
  H=http://127.0.0.1:$PEER_HTTP
  S=https://127.0.0.1:$PEER_TLS
  check_get "HTTP/1.1" --http1.1 "$H$P"
  check_get "HTTP/1.1+TLS" --http1.1 --cacert "$CERTS/ca.pem" "$S$P"
  check_get "h2" --http2 --cacert "$CERTS/ca.pem" "$S$P"
  PEER_H2C=yes
  v=$(curl -s -o /dev/null -w '%{http_code} %{http_version}' -H "Authorization: Bearer $TOKEN" --http2-prior-knowledge "$H$P" || true)
  if [ "$v" != "200 2" ]; then
    PEER_H2C=
    echo "h2c prior knowledge answered '$v' (curl --http2-prior-knowledge)" >"$R/peer_h2c_unsupported"
    echo "    check h2c: not supported by the peer ($v); that cell is skipped" >&2
  else
    echo "    check h2c: status 200, HTTP/2 (Hypercorn accepts the prior-knowledge preface)" >&2
  fi
  sleep 1
  PG="$HC_PG,$REDIS_PG"
  cell_wrk peer_h1 "$H$P" "$PG";      alive "$HC_PG" hypercorn
  cell_wrk peer_h1tls "$S$P" "$PG";   alive "$HC_PG" hypercorn
  cell_h2load peer_h2 "$S$P" "$PG";   alive "$HC_PG" hypercorn
  if [ -n "$PEER_H2C" ]; then cell_h2load peer_h2c "$H$P" "$PG"; alive "$HC_PG" hypercorn; fi
  stop "$HC_PG"; stop "$REDIS_PG"
fi

# ---- 5. the table and the JSON ----------------------------------------------------------------
cat /proc/loadavg >"$R/loadavg_end"
"$PY" "$LIB" report --results "$R" --root "$ROOT" --out "$OUT" --only "$ONLY" \
  --duration "$DURATION" --conns "$CONNS" --threads "$THREADS" --streams "$STREAMS" \
  --procs "$H3_PROCS" --per-run "$H3_REQUESTS" --reel-log-level "$REEL_LOG_LEVEL" \
  --peer-workers "$PEER_HYPERCORN_WORKERS" --peer-worker-class "$PEER_WORKER_CLASS"
