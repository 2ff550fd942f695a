#!/usr/bin/env bash
# Make the local Python base image the container tests build on, where no image
# can be pulled (see docs/CONTAINERS.md):
#   1. debootstrap a minimal Debian with python3 from the host's own apt mirror,
#   2. import it into podman,
#   3. add the host's CA bundle, so builds on it reach the package registries
#      through the same TLS-intercepting proxy the host uses.
# Idempotent: does nothing when the image already exists (FORCE=1 rebuilds).
#
# Usage: scripts/build-base-image.sh [IMAGE]   (default localhost/python-base:bookworm)
# Env: MIRROR (default: the host's apt mirror), SUITE (default bookworm),
#      CONTAINERS_CONF (default: deploy/podman/containers.conf of this repo).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
image=${1:-localhost/python-base:bookworm}
bare_image="${image}-bare"
suite=${SUITE:-bookworm}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}

if [[ ${FORCE:-0} != 1 ]] && podman image exists "$image"; then
    echo "build-base-image: $image already exists"
    exit 0
fi

# The Debian mirror the host itself uses (deb822 .sources or one-line .list),
# skipping the security archive, which has no full suite to bootstrap from.
host_mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    local file
    for file in "${files[@]}"; do
        [[ -f $file ]] || continue
        if [[ $file == *.sources ]]; then
            awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$file"
        else
            awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$file"
        fi
    done | grep -v -- '-security' | head -n 1
}

mirror=${MIRROR:-$(host_mirror)}
if [[ -z $mirror ]]; then
    echo "build-base-image: no Debian mirror in the host's apt sources; set MIRROR" >&2
    exit 1
fi
ca_bundle=/etc/ssl/certs/ca-certificates.crt
if [[ ! -s $ca_bundle ]]; then
    echo "build-base-image: no CA bundle at $ca_bundle" >&2
    exit 1
fi
for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { echo "build-base-image: $tool is not installed" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ ${FORCE:-0} == 1 ]] || ! podman image exists "$bare_image"; then
    echo "build-base-image: debootstrap $suite from $mirror"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
    # apt's lists and caches only add weight to the image.
    rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*
    tar -C "$work/rootfs" -c . | podman import --change 'CMD ["python3"]' - "$bare_image" >/dev/null
    rm -rf "$work/rootfs"
fi

cp "$ca_bundle" "$work/host-bundle.crt"
cat >"$work/Containerfile" <<EOF
FROM $bare_image
COPY host-bundle.crt /usr/local/share/ca-certificates/host-bundle.crt
# It warns that the file holds many certificates, and adds them all the same.
RUN update-ca-certificates >/dev/null 2>&1
EOF
podman build --quiet --tag "$image" --file "$work/Containerfile" "$work" >/dev/null
echo "build-base-image: built $image"
