#!/usr/bin/env bash
# Install the pinned helm CLI (and kustomize when kubectl is missing) into .tools/bin.
# Both are Go modules built from the Go module proxy: no binary download site is reachable here.
# Reruns are no-ops once .tools/bin/helm reports the pin; Go's build cache makes rebuilds fast.
# Usage: scripts/setup/ensure-k8s-tools.sh [helm|kustomize|all]   (default: all)
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."

HELM_VERSION=v3.22.0        # helm.sh/helm/v3; its go.mod has no replace directives
HELM_K8S_MINOR=37           # its k8s.io/client-go is v0.37: the default Kubernetes version it assumes
KUSTOMIZE_VERSION=v5.8.1    # sigs.k8s.io/kustomize/kustomize/v5; go.mod checked: no replace directives
BIN=$PWD/.tools/bin
mkdir -p "$BIN"

need_go() {
    command -v go >/dev/null || { echo "Go (1.24+) is required to build helm/kustomize" >&2; exit 1; }
}

ensure_helm() {
    if [ -x "$BIN/helm" ] && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
        return 0
    fi
    need_go
    echo "==> building helm $HELM_VERSION into .tools/bin (a cold build takes a few minutes)"
    local start=$SECONDS
    # The ldflags helm's own Makefile sets: without them `helm version` says "v3.22" and
    # templates see Kubernetes v1.20 (which fails the chart's kubeVersion).
    local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
    ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
    GOBIN=$BIN CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    echo "==> helm $HELM_VERSION built in $((SECONDS - start)) s"
    "$BIN/helm" version --template '{{.Version}}' | grep -qx "$HELM_VERSION"
}

# kustomize: `kubectl kustomize` when kubectl exists (k8s/kustomize-build.sh picks one), else a pinned build.
ensure_kustomize() {
    command -v kubectl >/dev/null && return 0
    if [ -x "$BIN/kustomize" ] && "$BIN/kustomize" version 2>/dev/null | grep -q "${KUSTOMIZE_VERSION}"; then
        return 0
    fi
    need_go
    echo "==> building kustomize $KUSTOMIZE_VERSION into .tools/bin"
    GOBIN=$BIN go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
}

case "${1:-all}" in
    helm) ensure_helm ;;
    kustomize) ensure_kustomize ;;
    all) ensure_helm; ensure_kustomize ;;
    *) echo "usage: $0 [helm|kustomize|all]" >&2; exit 2 ;;
esac
