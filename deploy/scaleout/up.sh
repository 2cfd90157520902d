#!/usr/bin/env bash
# Brings up the scale-out example on loopback: PostgreSQL 15 (a throwaway
# cluster with a generated password), s3rver (an S3-protocol server that
# checks signatures), `reeld migrate`, then one API node and two worker
# nodes. See README.md.
#
#   deploy/scaleout/up.sh          start everything in the background and exit
#   deploy/scaleout/up.sh --wait   the same, then stay in the foreground; Ctrl-C stops it all
#   deploy/scaleout/down.sh        stop it all
#
# Environment (all optional):
#   REEL_SCALEOUT_RUN   run directory (default ${TMPDIR:-/tmp}/reel-scaleout): configs,
#                       data_dirs, logs, pid files, the database and the bucket
#   REELD               the reeld binary (default: build/reeld of this repository)
#   REEL_API_PORT, REEL_WORKER1_PORT, REEL_WORKER2_PORT   (8080, 8081, 8082)
#   REEL_PG_PORT, REEL_S3_PORT                            (55432, 4568)
#
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# `postgres` user that Debian's package creates. Everything listens on
# 127.0.0.1 only.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
REELD=${REELD:-$REPO/build/reeld}
RUN=${REEL_SCALEOUT_RUN:-${TMPDIR:-/tmp}/reel-scaleout}
API_PORT=${REEL_API_PORT:-8080}
WORKER1_PORT=${REEL_WORKER1_PORT:-8081}
WORKER2_PORT=${REEL_WORKER2_PORT:-8082}
PG_PORT=${REEL_PG_PORT:-55432}
S3_PORT=${REEL_S3_PORT:-4568}
NODES="api worker-1 worker-2"
WAIT=0
case "${1:-}" in
  --wait) WAIT=1 ;;
  "") ;;
  *) echo "usage: $0 [--wait]" >&2; exit 2 ;;
esac

say() { printf 'up.sh: %s\n' "$*"; }
die() { printf 'up.sh: %s\n' "$*" >&2; exit 1; }

[ -x "$REELD" ] || die "no reeld at $REELD (build it with make, or set REELD)"
command -v curl >/dev/null || die "curl is missing (Debian package curl)"
command -v node >/dev/null || die "node is missing (Debian package nodejs)"
[ -d "$REPO/tools/node_modules/@20minutes/s3rver" ] ||
  die "s3rver is not installed under tools/node_modules (run scripts/install-deps.sh --test)"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || die "PostgreSQL is not installed (Debian package postgresql)"
if [ -e "$RUN" ]; then
  die "$RUN exists: is the example already up? (stop it with $HERE/down.sh, or set REEL_SCALEOUT_RUN)"
fi

PG_USER=""
if [ "$(id -u)" = 0 ]; then
  PG_USER=postgres
  id "$PG_USER" >/dev/null 2>&1 || die "running as root needs the postgres user (Debian package postgresql)"
fi
as_pg() { if [ -n "$PG_USER" ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }

up=0
cleanup() { # a failed start leaves nothing running
  if [ "$up" = 0 ]; then
    echo "up.sh: start-up failed; stopping what was started (logs in $RUN/logs)" >&2
    "$HERE/down.sh" --keep >/dev/null 2>&1 || true
  fi
}
export REEL_SCALEOUT_RUN="$RUN"
mkdir -p "$RUN"
trap cleanup EXIT
chmod 0755 "$RUN" # the postgres user must reach $RUN/pg
if [ -n "$PG_USER" ] && ! runuser -u "$PG_USER" -- test -x "$RUN"; then
  die "the $PG_USER user cannot enter $RUN (a parent directory is private): choose another REEL_SCALEOUT_RUN"
fi
mkdir -p "$RUN/logs" "$RUN/pids" "$RUN/s3" "$RUN/pg" "$RUN/secrets"
chmod 0700 "$RUN/secrets" "$RUN/logs"
for node in $NODES; do mkdir -p "$RUN/var/$node"; done
printf 'PG_BIN=%s\nPG_USER=%s\n' "$PG_BIN" "$PG_USER" > "$RUN/cluster.env"

# -- the configs, with this run's ports --
for node in $NODES; do
  sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$API_PORT/" -e "s/127\.0\.0\.1:8081/127.0.0.1:$WORKER1_PORT/" \
      -e "s/127\.0\.0\.1:8082/127.0.0.1:$WORKER2_PORT/" -e "s/127\.0\.0\.1:55432/127.0.0.1:$PG_PORT/" \
      -e "s/127\.0\.0\.1:4568/127.0.0.1:$S3_PORT/" "$HERE/$node.yaml" > "$RUN/$node.yaml"
done
install -m 0755 "$HERE/demo-pipeline.sh" "$RUN/demo-pipeline.sh"

# -- PostgreSQL: a cluster of its own, password (SCRAM) authentication --
umask 077
head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$RUN/secrets/db-password"
umask 022
mkdir -p "$RUN/pg/sock"
install -m 0600 "$RUN/secrets/db-password" "$RUN/pg/pwfile"
[ -z "$PG_USER" ] || chown -R "$PG_USER:" "$RUN/pg"
say "PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
as_pg "$PG_BIN/initdb" -D "$RUN/pg/data" -U reel --pwfile="$RUN/pg/pwfile" -A scram-sha-256 -E UTF8 \
  --locale=C --no-sync > "$RUN/logs/initdb.log" 2>&1 || die "initdb failed: see $RUN/logs/initdb.log"
rm -f "$RUN/pg/pwfile"
as_pg sh -c "cat >> '$RUN/pg/data/postgresql.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$RUN/pg/sock'
synchronous_commit = on
logging_collector = off
EOF
as_pg "$PG_BIN/pg_ctl" -D "$RUN/pg/data" -l "$RUN/pg/postgres.log" -w -t 60 start > /dev/null ||
  die "PostgreSQL did not start: see $RUN/pg/postgres.log"
PGPASSWORD=$(cat "$RUN/secrets/db-password") "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U reel reel ||
  die "cannot create the database reel"

# -- s3rver: the bucket --
say "s3rver on 127.0.0.1:$S3_PORT (bucket reel-artifacts)"
node "$REPO/tests/blackbox/s3rver.js" "$S3_PORT" "$RUN/s3" reel-artifacts < /dev/null > "$RUN/logs/s3rver.log" 2>&1 &
echo $! > "$RUN/pids/s3rver.pid"
for _ in $(seq 300); do
  grep -qs ready "$RUN/logs/s3rver.log" && break
  kill -0 "$(cat "$RUN/pids/s3rver.pid")" 2>/dev/null || die "s3rver exited: $(cat "$RUN/logs/s3rver.log")"
  sleep 0.1
done
grep -q ready "$RUN/logs/s3rver.log" || die "s3rver did not start: see $RUN/logs/s3rver.log"

# -- the schema, once, before any node starts (nodes would also migrate by
# themselves, under an advisory lock) --
cd "$RUN"
for node in $NODES; do
  "$REELD" --check-config --config "$node.yaml" > /dev/null || die "$node.yaml does not pass --check-config"
done
"$REELD" migrate --config api.yaml || die "reeld migrate failed"

# -- the nodes --
port_of() { case "$1" in api) echo "$API_PORT" ;; worker-1) echo "$WORKER1_PORT" ;; worker-2) echo "$WORKER2_PORT" ;; esac; }
for node in $NODES; do
  "$REELD" --config "$node.yaml" < /dev/null >> "logs/$node.log" 2>&1 &
  echo $! > "pids/$node.pid"
done
for node in $NODES; do
  port=$(port_of "$node")
  ok=0
  for _ in $(seq 300); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then ok=1; break; fi
    kill -0 "$(cat "pids/$node.pid")" 2>/dev/null || die "$node exited: $(tail -n 5 "logs/$node.log")"
    sleep 0.1
  done
  [ "$ok" = 1 ] || die "$node is not ready on 127.0.0.1:$port: $(curl -sS "http://127.0.0.1:$port/readyz" || true)"
  say "$node ready on http://127.0.0.1:$port (pid $(cat "pids/$node.pid"))"
done
up=1

cat <<EOF
up.sh: the example is up; logs in $RUN/logs
  T='Authorization: Bearer scaleout-example-token'
  curl -s -X POST -H "\$T" -H 'Content-Type: application/json' -d '{"prompt":"a harbour at dusk"}' \\
       http://127.0.0.1:$API_PORT/v1/jobs
  curl -s -H "\$T" http://127.0.0.1:$API_PORT/v1/jobs/JOB_ID            # "node": "worker-1" or "worker-2"
  curl -s -H "\$T" http://127.0.0.1:$API_PORT/v1/jobs/JOB_ID/artifact   # a presigned URL on s3rver
  curl -s http://127.0.0.1:$WORKER1_PORT/metrics | grep reel_runs_started_total
Stop it with: REEL_SCALEOUT_RUN=$RUN $HERE/down.sh
EOF

if [ "$WAIT" = 1 ]; then
  trap '"$HERE/down.sh"; exit 0' INT TERM
  trap - EXIT
  say "running in the foreground; Ctrl-C stops everything"
  wait || true
  "$HERE/down.sh"
fi
