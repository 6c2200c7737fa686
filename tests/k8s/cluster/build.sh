#!/usr/bin/env bash
# Build official Kubernetes binaries (kubelet, kube-apiserver, ...) at the pinned release from the
# Go module proxy into build/k8s/bin. k8s.io/kubernetes points its staging modules (k8s.io/api,
# client-go, ...) at ./staging with replace directives, which `go install mod@version` refuses; so
# this writes a module of its own that requires k8s.io/kubernetes and pins every staging module to
# its published v0.x twin with replace directives, then `go build`s the commands from it.
# Reruns are no-ops while a binary reports the pinned version; Go's caches make rebuilds cheap.
# Usage: tests/k8s/cluster/build.sh COMPONENT...   (kubelet kube-apiserver kube-controller-manager
#        kube-scheduler kube-proxy kubectl)
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
. tests/k8s/cluster/versions.env
[ $# -gt 0 ] || { echo "usage: $0 COMPONENT..." >&2; exit 2; }
command -v go >/dev/null || { echo "Go (1.24+) is required to build Kubernetes" >&2; exit 1; }

SRC=$PWD/build/k8s/src/kubernetes-$K8S_VERSION
BIN=$PWD/build/k8s/bin
mkdir -p "$SRC" "$BIN"

write_module() {
    [ -f "$SRC/go.sum" ] && return 0
    local upstream
    upstream=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
    [ -f "$upstream" ] || { echo "could not download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
    {
        echo "module local/k8s-build"
        echo
        echo "go 1.24.0"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        # Each upstream "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x $K8S_STAGING_VERSION".
        sed -n "s#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 $K8S_STAGING_VERSION#p" "$upstream"
        echo ")"
    } > "$SRC/go.mod"
    # A blank import per command makes `go mod tidy` record every dependency the builds need.
    {
        echo "//go:build tools"
        echo "package tools"
        echo "import ("
        for c in kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl; do
            echo "	_ \"k8s.io/kubernetes/cmd/$c\""
        done
        echo ")"
    } > "$SRC/tools.go"
    (cd "$SRC" && go mod tidy)
}

# What the release tarballs stamp in; without it the binaries say v0.0.0-master and nodes report it.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1"
    ldflags+=" -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
done

write_module
for c in "$@"; do
    case "$c" in
        kubelet|kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy|kubectl) ;;
        *) echo "unknown component '$c'" >&2; exit 2 ;;
    esac
    version_flag=(--version); [ "$c" = kubectl ] && version_flag=(version --client)
    if [ -x "$BIN/$c" ] && "$BIN/$c" "${version_flag[@]}" 2>/dev/null | grep -q "$K8S_VERSION\$"; then
        echo "==> $c $K8S_VERSION already built"; continue
    fi
    echo "==> building $c $K8S_VERSION (a cold build takes several minutes)"
    start=$SECONDS
    (cd "$SRC" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN/$c" "k8s.io/kubernetes/cmd/$c")
    echo "==> $c built in $((SECONDS - start)) s"
done
