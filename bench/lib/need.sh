# Sourced by the bench scripts: collect what is missing, then install it.
#   need_cmd COMMAND PACKAGE...   the packages when COMMAND is not on PATH
#   need_py MODULE:PACKAGE ...    the package when $PY cannot import MODULE (PY must be set)
#   need_install                  apt-get installs what was collected (sudo when not root)
need=()
need_cmd() { command -v "$1" >/dev/null || { shift; need+=("$@"); }; }
need_py() {
  local m
  for m in "$@"; do
    [ -x "$PY" ] && "$PY" -c "import ${m%%:*}" 2>/dev/null || need+=("${m#*:}")
  done
}
need_install() {
  [ ${#need[@]} -gt 0 ] || return 0
  echo "bench: installing ${need[*]}" >&2
  local SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
