#!/usr/bin/env bash
# Makes a development CA and a server certificate signed by it, for reeld's
# https:// and h3:// listeners (and for Caddy's upstream leg in the tests).
#   scripts/dev-cert.sh [DIR] [NAME...]
#   scripts/dev-cert.sh --for-config reel.yaml
#       (what `make run` does: if the config's service.tls files are missing and
#       are DIR/server.pem and DIR/server-key.pem, makes them; else does nothing)
# DIR defaults to ./dev-certs; NAMEs (DNS names or IP addresses) default to
# localhost 127.0.0.1 ::1. Writes DIR/ca.pem (trust this in clients),
# DIR/ca-key.pem, DIR/server.pem (leaf + CA chain) and DIR/server-key.pem.
# Keeps an existing CA and reissues the server certificate; ECDSA P-256 keys.
# Development only: the CA key sits beside the certificates, unencrypted.
set -euo pipefail
if [ "${1:-}" = "--for-config" ]; then
  config=${2:?usage: scripts/dev-cert.sh --for-config FILE}
  cert=$(sed -n 's/^[[:space:]]*cert_file:[[:space:]]*["'\'']\{0,1\}\([^"'\''#[:space:]]*\).*/\1/p' "$config" | head -1)
  key=$(sed -n 's/^[[:space:]]*key_file:[[:space:]]*["'\'']\{0,1\}\([^"'\''#[:space:]]*\).*/\1/p' "$config" | head -1)
  [ -n "$cert" ] && [ -n "$key" ] || exit 0                  # no TLS configured
  [ -f "$cert" ] && [ -f "$key" ] && exit 0                  # already there
  if [ "$(basename "$cert")" != server.pem ] || [ "$(basename "$key")" != server-key.pem ] ||
     [ "$(dirname "$cert")" != "$(dirname "$key")" ]; then
    echo "dev-cert: $config names $cert and $key, which are missing; put your certificate there" \
         "(or point service.tls at DIR/server.pem and DIR/server-key.pem to get a development pair)" >&2
    exit 1
  fi
  exec "$0" "$(dirname "$cert")"
fi
dir=${1:-dev-certs}
shift || true
names=("$@")
[ "${#names[@]}" -gt 0 ] || names=(localhost 127.0.0.1 ::1)
command -v certtool >/dev/null || { echo "dev-cert: certtool missing (apt-get install gnutls-bin)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$dir/ca.pem" ] || [ ! -f "$dir/ca-key.pem" ]; then
  certtool --generate-privkey --key-type ecdsa --curve secp256r1 --outfile "$dir/ca-key.pem" 2>/dev/null
  cat > "$tmp/ca.tmpl" <<TMPL
cn = "reel development CA"
organization = "reel (development only)"
ca
cert_signing_key
crl_signing_key
expiration_days = 3650
TMPL
  certtool --generate-self-signed --load-privkey "$dir/ca-key.pem" --template "$tmp/ca.tmpl" \
    --outfile "$dir/ca.pem" 2>/dev/null
fi

certtool --generate-privkey --key-type ecdsa --curve secp256r1 --outfile "$dir/server-key.pem" 2>/dev/null
{
  echo "cn = \"${names[0]}\""
  echo 'organization = "reel (development only)"'
  echo "serial = 0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  echo "expiration_days = 825"
  echo "tls_www_server"
  echo "signing_key"
  for n in "${names[@]}"; do
    if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then echo "ip_address = \"$n\""; else echo "dns_name = \"$n\""; fi
  done
} > "$tmp/server.tmpl"
certtool --generate-certificate --load-privkey "$dir/server-key.pem" --load-ca-certificate "$dir/ca.pem" \
  --load-ca-privkey "$dir/ca-key.pem" --template "$tmp/server.tmpl" --outfile "$tmp/leaf.pem" 2>/dev/null
cat "$tmp/leaf.pem" "$dir/ca.pem" > "$dir/server.pem"
chmod 644 "$dir/ca.pem" "$dir/server.pem"
echo "dev-cert: $dir/server.pem (${names[*]}), signed by $dir/ca.pem"
