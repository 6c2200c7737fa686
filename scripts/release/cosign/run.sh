#!/usr/bin/env bash
# Run cosign (Debian 13's package) in a throw-away container: the host network, so it reaches a registry
# on 127.0.0.1; the current directory mounted as the working directory, and each directory named in
# COSIGN_MOUNTS (colon-separated) at its own path (keys, predicates); COSIGN_PASSWORD passed through. Builds blueprint/cosign:trixie from this folder's Dockerfile when it is missing.
# Usage: scripts/release/cosign/run.sh COSIGN-ARGS...
set -o errexit -o pipefail -o nounset
IMAGE=blueprint/cosign:trixie
here=$(cd "$(dirname "$0")" && pwd)
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  "$here/../../../compose/images/debian/build.sh"
  docker build -q -t "$IMAGE" "$here" >/dev/null
fi
mounts=(-v "$PWD:$PWD")
IFS=: read -r -a extra <<<"${COSIGN_MOUNTS:-}"
for dir in "${extra[@]}"; do mounts+=(-v "$dir:$dir:ro"); done
exec docker run --rm -i --network host --user "$(id -u):$(id -g)" -e HOME=/tmp -e COSIGN_PASSWORD \
  "${mounts[@]}" -w "$PWD" "$IMAGE" "$@"
