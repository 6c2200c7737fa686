#!/usr/bin/env bash
# Copy images from Docker into the node's containerd (namespace k8s.io), where the kubelet finds
# them: there is no registry to pull from. Skips images containerd already has at the same id.
# Usage: tests/k8s/cluster/import-images.sh IMAGE...   (the node must be up: tests/k8s/cluster/node.sh up)
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
. tests/k8s/cluster/lib.sh
[ $# -gt 0 ] || { echo "usage: $0 IMAGE..." >&2; exit 2; }
ctr_ version >/dev/null 2>&1 || { echo "the node's containerd is not running: tests/k8s/cluster/node.sh up" >&2; exit 1; }
for image in "$@"; do
    id=$(docker image inspect --format '{{.Id}}' "$image") || { echo "no Docker image '$image'" >&2; exit 1; }
    # Docker names "x/y:t" are "docker.io/x/y:t" to containerd. Skip when that name's manifest
    # already points at the same config digest (Docker's image id).
    case "$image" in */*/*|*.*/*) full=$image ;; */*) full=docker.io/$image ;; *) full=docker.io/library/$image ;; esac
    manifest=$(ctr_ -n k8s.io images ls "name==$full" | awk 'NR == 2 {print $3}')
    if [ -n "$manifest" ] && [ "$(ctr_ -n k8s.io content get "$manifest" | jq -r .config.digest)" = "$id" ]; then
        continue
    fi
    echo "==> importing $image"
    docker save "$image" | ctr_ -n k8s.io images import - >/dev/null
done
