#!/usr/bin/env bash
# Make a self-signed TLS certificate for the nginx entry (deploy/nginx/).
# Usage: scripts/make-cert.sh [DIR] [NAME...]
#   DIR   where tls.crt and tls.key go (default deploy/nginx/certs)
#   NAME  host names or IP addresses it is valid for (default localhost 127.0.0.1)
# Keeps an existing pair; FORCE=1 makes a new one. DAYS (default 365) sets its life.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$repo/deploy/nginx/certs}
shift || true
names=("$@")
((${#names[@]})) || names=(localhost 127.0.0.1)

if [[ ${FORCE:-0} != 1 && -s $dir/tls.crt && -s $dir/tls.key ]]; then
    echo "make-cert: $dir/tls.crt already exists"
    exit 0
fi
command -v openssl >/dev/null || { echo "make-cert: openssl is not installed" >&2; exit 1; }

san=()
for name in "${names[@]}"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+=("IP:$name"); else san+=("DNS:$name"); fi
done
mkdir -p "$dir"
# The key is written readable by its owner only; nginx's master (root) reads it.
(umask 077 && openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days "${DAYS:-365}" \
    -subj "/CN=${names[0]}" \
    -addext "subjectAltName=$(IFS=,; echo "${san[*]}")" \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null)
chmod 644 "$dir/tls.crt"
echo "make-cert: wrote $dir/tls.crt and $dir/tls.key for ${names[*]}"
