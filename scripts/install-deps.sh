#!/usr/bin/env bash
# Installs the Debian packages reel needs to build, run and test.
# Idempotent: installs only what is missing; safe to run on every `make`.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also the test tools (promtool, wrk, npm tools)
set -euo pipefail
cd "$(dirname "$0")/.."

build_pkgs=(build-essential cmake pkg-config libuv1-dev libjansson-dev libyaml-dev
            libsqlite3-dev libgnutls28-dev libcurl4-gnutls-dev libnghttp2-dev
            libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev gnutls-bin nodejs npm
            libpq-dev libpq5                      # service.database.backend: postgres (libpq is loaded only then)
            ffmpeg espeak-ng fonts-dejavu-core    # the built-in renderer (pipeline.default_backend: local)
            fonts-noto-cjk fonts-symbola)         # its CJK and (monochrome) emoji glyphs; see docs/renderer.md
test_pkgs=(python3 python3-boto3 python3-cryptography curl prometheus clang llvm wrk procps nghttp2-client
           ngtcp2-client caddy
           fontconfig    # fc-list: the renderer test checks which font covers a character
           postgresql postgresql-client   # the scale-out tests start a PostgreSQL 15 of their own
           tmux          # test_client runs `reel submit --wait` in a tmux pane
           systemd)      # systemd-analyze verify: the deploy test checks the shipped units

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# nodejs may come from outside Debian packaging on some images; accept any working node/npm.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
clean=(); for p in "${missing[@]}"; do [ -n "$p" ] && clean+=("$p"); done
if [ "${#clean[@]}" -gt 0 ]; then
  echo "install-deps: installing ${clean[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${clean[@]}" >/dev/null
fi

# Front-end assets (Swagger UI for /docs) and test tools (Redocly CLI) from npm,
# pinned by tools/package-lock.json. Installed once; reinstalled when the lock changes.
if [ -f tools/package.json ]; then
  stamp=tools/node_modules/.reel-stamp
  if [ ! -f "$stamp" ] || [ tools/package-lock.json -nt "$stamp" ]; then
    echo "install-deps: npm ci in tools/"
    (cd tools && npm ci --no-audit --no-fund --loglevel=error) && touch "$stamp"
  fi
fi
