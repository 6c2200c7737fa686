#!/usr/bin/env bash
# `kustomize build DIR` with whatever is installed: kubectl's built-in kustomize, else the pinned
# kustomize that scripts/setup/ensure-k8s-tools.sh builds into .tools/bin.
set -o errexit -o pipefail -o nounset
DIR=${1:?usage: $0 DIR}
if command -v kubectl >/dev/null; then
    exec kubectl kustomize "$DIR"
fi
exec "$(dirname "$0")/../.tools/bin/kustomize" build "$DIR"
