#!/usr/bin/env bash
# Idle memory of reeld per listener kind, against the peer's API process
# (Hypercorn serving bench/peer/app.py, one worker) measured in the same run.
#
#   bench/footprint.sh        (make bench-footprint)
#
# Each configuration is started BENCH_RUNS times (5) on a fresh data_dir, left
# idle for BENCH_SETTLE seconds (1.5) after it answers, and measured (the
# median is reported, with the range): VmRSS and Pss of the server process (reeld
# with its 2 job runners idle has no children), and which of the libraries
# that only object storage needs are mapped. Prints a table and writes
# bench/results/footprint.json. Not part of the test suite.
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
REELD=${REELD:-$ROOT/build/reeld}
SETTLE=${BENCH_SETTLE:-1.5}
RUNS=${BENCH_RUNS:-5}
TIMEOUT=${BENCH_TIMEOUT:-120}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/reel-footprint.XXXXXX)
OUT=${BENCH_OUT:-$BENCH/results/footprint.json}
# shellcheck source=lib/processes.sh
. "$BENCH/lib/processes.sh"
[ -x "$REELD" ] || { echo "footprint: $REELD is not built (make build)" >&2; exit 1; }
"$PY" -c 'import hypercorn, fastapi, rq' 2>/dev/null || {
  echo "footprint: the peer needs python3-hypercorn python3-fastapi python3-rq (apt-get install)" >&2; exit 1; }

bash "$ROOT/scripts/dev-cert.sh" "$WORK/certs" >/dev/null 2>&1
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mem_of() { # mem_of PID -> "rss_kb pss_kb curl_mapped"
  local rss pss curl=no
  rss=$(awk '/^VmRSS:/{print $2}' "/proc/$1/status")
  pss=$(awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup")
  grep -q 'libcurl' "/proc/$1/maps" && curl=yes
  echo "$rss $pss $curl"
}

wait_port() { # wait_port PORT PID
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { echo "footprint: the server exited during start" >&2; return 1; }
    "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),timeout=0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

measure_reeld() { # measure_reeld LABEL LISTEN_YAML [STORAGE_YAML]  (LISTEN_YAML "reel.yaml": the repository's own)
  local label=$1 listen=$2 storage=${3:-} port cfg
  port=$(free_port)
  N=$((${N:-0} + 1))
  cfg="$WORK/config-$N.yaml"
  if [ "$listen" = reel.yaml ]; then
    # the repository's reel.yaml as it is, with free ports, this run's data_dir and certificate
    local tls_port
    tls_port=$(free_port)
    sed -e "s#127.0.0.1:8000#127.0.0.1:$port#; s#127.0.0.1:8443#127.0.0.1:$tls_port#g" \
        -e "s#data_dir: .*#data_dir: $WORK/data-$N#" \
        -e "s#cert_file: .*#cert_file: $WORK/certs/server.pem#; s#key_file: .*#key_file: $WORK/certs/server-key.pem#" \
        "$ROOT/reel.yaml" >"$cfg"
  else
  cat >"$cfg" <<EOF
service:
  listen: [${listen//PORT/$port}]
  tls: {cert_file: $WORK/certs/server.pem, key_file: $WORK/certs/server-key.pem}
  data_dir: $WORK/data-$N
  auth: {tokens: [bench-token]}
  workers: 2
$storage
pipeline: {default_backend: local}
EOF
  fi
  local rsses=() psses=() run rss pss curl
  for run in $(seq "$RUNS"); do   # each start on a fresh data_dir
    rm -rf "$WORK/data-$N"
    start "$WORK/reeld-$N.log" "$REELD" --config "$cfg"
    local pid=$LAST
    wait_port "$port" "$pid"
    sleep "$SETTLE"
    read -r rss pss curl < <(mem_of "$pid")
    rsses+=("$rss"); psses+=("$pss")
    stop_group "$pid"
  done
  rss=$(printf '%s\n' "${rsses[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  pss=$(printf '%s\n' "${psses[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  local range
  range="$(printf '%s\n' "${rsses[@]}" | sort -n | head -1)–$(printf '%s\n' "${rsses[@]}" | sort -n | tail -1)"
  printf '| %-34s | %8d | %-13s | %8d | %-6s |\n' "$label" "$rss" "$range" "$pss" "$curl"
  echo "{\"config\": \"$label\", \"rss_kb\": $rss, \"rss_kb_runs\": [$(IFS=,; echo "${rsses[*]}")], \"pss_kb\": $pss, \"libcurl_mapped\": \"$curl\"}" >>"$WORK/rows.json"
  LAST_RSS=$rss
}

echo "| configuration (idle, 2 job runners) | VmRSS kB (median of $RUNS) | range | Pss kB | libcurl |"
echo "|---|---|---|---|---|"
measure_reeld "http:// (HTTP/1.1 + h2c)" "http://127.0.0.1:PORT"
measure_reeld "https:// (TLS: h2, HTTP/1.1)" "https://127.0.0.1:PORT"
measure_reeld "h3:// + http://" "http://127.0.0.1:PORT, h3://127.0.0.1:PORT"
measure_reeld "reel.yaml as shipped (http+https+h3)" reel.yaml
DEFAULT_RSS=$LAST_RSS
measure_reeld "http:// with S3 storage" "http://127.0.0.1:PORT" \
  "  storage: {backend: s3, bucket: b, endpoint: 'http://127.0.0.1:9', region: us-east-1, access_key_id: a, secret_access_key: s, path_style: true}"

# the peer: one Hypercorn worker serving the same API (no Redis needed to idle)
PEER_PORT=$(free_port)
start "$WORK/peer.log" env -C "$BENCH/peer" PEER_REDIS_URL="redis://127.0.0.1:9/0" PEER_TOKENS=bench-token \
  "$PY" -m hypercorn --workers 1 --bind "127.0.0.1:$PEER_PORT" app:app
PEER_PID=$LAST
wait_port "$PEER_PORT" "$PEER_PID"
sleep "$SETTLE"
peer_rss=0; peer_pss=0
for p in $(pgrep -g "$PEER_PID" || true); do
  read -r r s _ < <(mem_of "$p"); peer_rss=$((peer_rss + r)); peer_pss=$((peer_pss + s))
done
printf '| %-34s | %8d | %-13s | %8d | %-6s |\n' "peer: Hypercorn + FastAPI (1 worker)" "$peer_rss" "1 run" "$peer_pss" "-"
echo
awk -v a="$DEFAULT_RSS" -v b="$peer_rss" 'BEGIN{printf "reel.yaml as shipped: %.2f MiB idle RSS (median); peer/reel = %.1f×\n", a/1024, b/a}'
mkdir -p "$(dirname "$OUT")"
{ echo "{\"reel\": ["; paste -sd, "$WORK/rows.json"; echo "], \"peer_rss_kb\": $peer_rss, \"peer_pss_kb\": $peer_pss}"; } >"$OUT"
