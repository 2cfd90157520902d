#!/usr/bin/env bash
# Stops the scale-out example that up.sh started in $REEL_SCALEOUT_RUN
# (default ${TMPDIR:-/tmp}/reel-scaleout): the API node, then the workers
# (SIGTERM: each stops its runs and requeues them without using an attempt),
# s3rver, PostgreSQL. Only the processes named in the run's pid files are
# signalled, and only while their command line is still theirs. Then the run
# directory is removed, unless --keep is given.
set -uo pipefail

RUN=${REEL_SCALEOUT_RUN:-${TMPDIR:-/tmp}/reel-scaleout}
KEEP=0
case "${1:-}" in
  --keep) KEEP=1 ;;
  "") ;;
  *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac
[ -d "$RUN" ] || { echo "down.sh: nothing to stop ($RUN does not exist)"; exit 0; }

# alive PID WORD: the process exists, is not a zombie, and WORD is in its command line
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  case "${stat%% *}" in Z|X) return 1 ;; esac
  tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop NAME WORD TIMEOUT: SIGTERM, then SIGKILL after TIMEOUT seconds
stop() {
  local file="$RUN/pids/$1.pid" pid i
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if alive "$pid" "$2"; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < $3 * 10; i++)); do
      alive "$pid" "$2" || break
      sleep 0.1
    done
    if alive "$pid" "$2"; then
      echo "down.sh: $1 (pid $pid) did not stop in $3 s; killing it"
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  rm -f "$file"
}

for node in api worker-1 worker-2; do stop "$node" "$node.yaml" 30; done
stop s3rver s3rver.js 10

if [ -f "$RUN/cluster.env" ]; then
  PG_BIN=$(sed -n 's/^PG_BIN=//p' "$RUN/cluster.env")
  PG_USER=$(sed -n 's/^PG_USER=//p' "$RUN/cluster.env")
  if [ -f "$RUN/pg/data/postmaster.pid" ]; then
    if [ -n "$PG_USER" ]; then
      runuser -u "$PG_USER" -- "$PG_BIN/pg_ctl" -D "$RUN/pg/data" -m fast -w stop > /dev/null
    else
      "$PG_BIN/pg_ctl" -D "$RUN/pg/data" -m fast -w stop > /dev/null
    fi
  fi
fi

if [ "$KEEP" = 1 ]; then
  echo "down.sh: stopped; $RUN kept"
else
  rm -rf "$RUN"
  echo "down.sh: stopped; $RUN removed"
fi
