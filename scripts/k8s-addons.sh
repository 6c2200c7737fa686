#!/usr/bin/env bash
# Build the cluster add-ons at their pins (scripts/k8s-versions.env) into build/k8s/bin with
# `go install` (their go.mod has no replace directives), and make their one-binary images.
# Usage: scripts/k8s-addons.sh build
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
. scripts/k8s-versions.env
BIN=$PWD/build/k8s/bin
mkdir -p "$BIN"

build() {  # build NAME MODULE_PATH VERSION IMAGE
    local name=$1 pkg=$2 version=$3 image=$4
    if [ ! -x "$BIN/$name" ] || [ "$(cat "$BIN/.$name.version" 2>/dev/null)" != "$version" ]; then
        echo "==> building $name $version"
        local start=$SECONDS
        GOBIN=$BIN CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$pkg@$version"
        echo "$version" > "$BIN/.$name.version"
        echo "==> $name built in $((SECONDS - start)) s"
    fi
    scripts/k8s-binary-image.sh "$image" "$BIN/$name"
}

case "${1:-}" in
    build) build coredns github.com/coredns/coredns "$COREDNS_VERSION" "k8s-local/coredns:$COREDNS_VERSION" ;;
    *) echo "usage: $0 build" >&2; exit 2 ;;
esac
