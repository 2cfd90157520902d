#!/usr/bin/env bash
# Configures a CMake build directory. Uses clang (and builds the libFuzzer
# targets) when clang is installed, else the system cc. A directory configured
# earlier without fuzzers is reconfigured once clang is there, so `make test`
# after `make run` still runs the fuzz targets.
#   scripts/configure.sh BUILD_DIR [--sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1; shift
sanitize=OFF; type=RelWithDebInfo
if [ "${1:-}" = "--sanitize" ]; then sanitize=ON; type=Debug; fi
if command -v clang >/dev/null 2>&1; then cc=clang; fuzz=ON; else cc=cc; fuzz=OFF; fi
[ "$sanitize" = ON ] && fuzz=OFF
cache="$dir/CMakeCache.txt"
if [ -f "$cache" ] && [ "$fuzz" = ON ] && ! grep -q '^REEL_FUZZ:BOOL=ON' "$cache"; then
  echo "configure: clang is now available: reconfiguring $dir with the fuzz targets"
  rm -rf "$dir"
fi
if [ ! -f "$cache" ]; then
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=$type -DCMAKE_C_COMPILER=$cc -DREEL_FUZZ=$fuzz -DREEL_SANITIZE=$sanitize
fi
