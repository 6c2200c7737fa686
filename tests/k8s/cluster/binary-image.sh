#!/usr/bin/env bash
# Wrap one static binary into an image without a registry or a base image: `docker import` of a
# tar holding just the binary (and the CA bundle, for clients of TLS services), then `docker save`
# into build/k8s/images/NAME.tar for the node's containerd. Skips an image Docker already has.
# Usage: tests/k8s/cluster/binary-image.sh IMAGE BINARY [USER]   (entrypoint: /<basename of BINARY>)
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
[ $# -ge 2 ] || { echo "usage: $0 IMAGE BINARY [USER]" >&2; exit 2; }
image=$1 binary=$2 user=${3:-65534:65534}
[ -x "$binary" ] || { echo "no executable '$binary' to put into $image" >&2; exit 1; }
if ! docker image inspect "$image" >/dev/null 2>&1; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    install -m 0755 "$binary" "$root/"
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    tar -C "$root" --owner=0 --group=0 -c . \
        | docker import --change "ENTRYPOINT [\"/$(basename "$binary")\"]" --change "USER $user" - "$image" >/dev/null
fi
echo "==> $image"
