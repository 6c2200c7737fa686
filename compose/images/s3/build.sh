#!/usr/bin/env bash
# Build the project's S3-compatible object store: versitygw (Apache-2.0, POSIX backend) at a pinned
# version, from the Go module proxy, as a static binary -- no binary download site or registry needed.
# Why versitygw: see docs/storage.md.
#
# Usage: compose/images/s3/build.sh [binary|image]   (default: binary)
#   binary  .tools/bin/versitygw (host tests, Ansible's `storage` hosts) and build/s3/versitygw
#   image   also the offline image $S3_LOCAL_IMAGE (default blueprint/s3:<version>), FROM the local Debian
#           13 image (compose/images/debian/build.sh), for Compose (S3_IMAGE=...) and the chart.
# Reruns are no-ops while the pin is unchanged (the binary reports its version; the image is labelled).
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."

S3_SERVER_MODULE=github.com/versity/versitygw
S3_SERVER_VERSION=v1.8.0   # go.mod checked: no replace directives, so `go install pkg@version` works
BIN=$PWD/.tools/bin
OUT=$PWD/build/s3
S3_LOCAL_IMAGE=${S3_LOCAL_IMAGE:-blueprint/s3:$S3_SERVER_VERSION}
BASE_IMAGE=${BASE_IMAGE:-blueprint/debian:trixie}

binary_is_current() {
    # Capture first: `| grep -q` would exit early, SIGPIPE the binary and fail the pipeline (pipefail).
    local reported
    [ -x "$1" ] && reported=$("$1" --version 2>/dev/null) && grep -q "^Version *: *$S3_SERVER_VERSION\$" <<<"$reported"
}

ensure_binary() {
    mkdir -p "$BIN" "$OUT"
    if ! binary_is_current "$BIN/versitygw"; then
        command -v go >/dev/null || { echo "ERROR: Go (1.25+) is required to build versitygw $S3_SERVER_VERSION" >&2; exit 1; }
        echo "==> building versitygw $S3_SERVER_VERSION (static) into .tools/bin (a cold build takes a few minutes)"
        local start=$SECONDS
        # CGO off: one static binary that runs on the host, in the Debian image and on any Ansible host.
        # -X main.Version: what `versitygw --version` reports, so the check above can see the pin.
        CGO_ENABLED=0 GOBIN=$BIN GOFLAGS=-mod=mod go install -trimpath \
            -ldflags "-s -w -X main.Version=$S3_SERVER_VERSION" \
            "$S3_SERVER_MODULE/cmd/versitygw@$S3_SERVER_VERSION"
        echo "==> versitygw $S3_SERVER_VERSION built in $((SECONDS - start)) s"
        binary_is_current "$BIN/versitygw" || { echo "ERROR: built versitygw does not report $S3_SERVER_VERSION" >&2; exit 1; }
    fi
    # build/s3 is the image's build context: the binary, the Dockerfile and the health check.
    cmp -s "$BIN/versitygw" "$OUT/versitygw" || cp "$BIN/versitygw" "$OUT/versitygw"
    cp compose/images/s3/Dockerfile compose/images/s3/healthcheck "$OUT/"
}

ensure_image() {
    if [ "$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}}' "$S3_LOCAL_IMAGE" 2>/dev/null)" = "$S3_SERVER_VERSION" ] \
        && [ "$(docker image inspect -f '{{index .Config.Labels "blueprint.context-sha"}}' "$S3_LOCAL_IMAGE" 2>/dev/null)" = "$(context_sha)" ]; then
        return 0
    fi
    compose/images/debian/build.sh
    echo "==> building $S3_LOCAL_IMAGE"
    docker build -q -t "$S3_LOCAL_IMAGE" --build-arg BASE_IMAGE="$BASE_IMAGE" \
        --build-arg VERSION="$S3_SERVER_VERSION" --label "blueprint.context-sha=$(context_sha)" "$OUT" >/dev/null
}

# Rebuild the image when the Dockerfile, health check or binary changed, not only the pin.
context_sha() {
    cat "$OUT/Dockerfile" "$OUT/healthcheck" "$OUT/versitygw" | sha256sum | cut -c1-16
}

case "${1:-binary}" in
    binary) ensure_binary ;;
    image) ensure_binary; ensure_image ;;
    version) echo "$S3_SERVER_VERSION" ;;
    *) echo "usage: $0 [binary|image|version]" >&2; exit 2 ;;
esac
