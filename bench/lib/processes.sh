# Sourced by the bench scripts: processes started in sessions of their own,
# all stopped (TERM, then KILL after 5 s) when the script exits, and WORK
# removed. Needs WORK and TIMEOUT set; `start LOG CMD...` runs CMD in a new
# session with its output in LOG and sets LAST to its pid (= process group).
GROUPS_STARTED=()   # process-group ids (each service runs in a session of its own)

stop_group() { # stop_group PGID: TERM, then KILL after 5 s
  local g=$1 i
  # (just after its start a process may not have made its own group yet: then signal it alone)
  kill -TERM -- "-$g" 2>/dev/null || kill -TERM "$g" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 -- "-$g" 2>/dev/null || kill -0 "$g" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || kill -KILL "$g" 2>/dev/null || true
}
cleanup() {
  local rc=$? g
  trap - EXIT INT TERM
  for g in "${GROUPS_STARTED[@]}"; do stop_group "$g"; done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ] && [ -d "$WORK" ]; then
    echo "bench: failed (exit $rc); the servers' logs:" >&2
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }; done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'echo "bench: stopped (BENCH_TIMEOUT=${TIMEOUT}s or a signal)" >&2; exit 124' TERM

start() {
  local log=$1; shift
  setsid "$@" >"$log" 2>&1 </dev/null &
  LAST=$!
  GROUPS_STARTED+=("$LAST")
}
