#!/usr/bin/env bash
# Build the cluster add-ons at their pins (tests/k8s/cluster/versions.env) into build/k8s/bin and make
# their one-binary images (tests/k8s/cluster/binary-image.sh).
# - CoreDNS and metrics-server: `go install mod@version` (their go.mod has no replace directives).
# - KEDA: its go.mod has a replace directive, which `go install` refuses; so, like
#   tests/k8s/cluster/build.sh, a module of our own requires it, copies its replace/exclude lines, and
#   `go build`s the operator and the metrics adapter from there.
# `deploy` puts metrics-server and KEDA on the running cluster: upstream's own manifests from the
# pinned modules (kustomize bases), with our images and a few settings (tests/k8s/addons/*).
# Usage: tests/k8s/cluster/addons.sh build [NAME...]   (coredns metrics-server keda; default: all)
#        tests/k8s/cluster/addons.sh deploy
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
. tests/k8s/cluster/versions.env
BIN=$PWD/build/k8s/bin
mkdir -p "$BIN"

built() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$BIN/.$1.version"; echo "==> $1 built in $(($SECONDS - $3)) s"; }

install() {  # install NAME MODULE_PATH VERSION IMAGE
    local name=$1 pkg=$2 version=$3 image=$4 start=$SECONDS
    if ! built "$name" "$version"; then
        echo "==> building $name $version"
        GOBIN=$BIN CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$pkg@$version"
        stamp "$name" "$version" "$start"
    fi
    tests/k8s/cluster/binary-image.sh "$image" "$BIN/$name"
}

keda() {
    local src=$PWD/build/k8s/src/keda-$KEDA_VERSION start=$SECONDS cmd
    if ! built keda-operator "$KEDA_VERSION" || ! built keda-adapter "$KEDA_VERSION"; then
        echo "==> building KEDA $KEDA_VERSION (operator, metrics adapter)"
        mkdir -p "$src"
        if [ ! -f "$src/go.sum" ]; then
            local upstream
            upstream=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
            [ -f "$upstream" ] || { echo "could not download KEDA $KEDA_VERSION" >&2; exit 1; }
            {
                printf 'module local/keda-build\n\n%s\n\nrequire github.com/kedacore/keda/v2 %s\n\n' "$(grep '^go ' "$upstream")" "$KEDA_VERSION"
                grep -E '^(replace|exclude) ' "$upstream"
            } > "$src/go.mod"
            printf '//go:build tools\npackage tools\nimport (\n\t_ "github.com/kedacore/keda/v2/cmd/operator"\n\t_ "github.com/kedacore/keda/v2/cmd/adapter"\n)\n' > "$src/tools.go"
            (cd "$src" && go mod tidy)
        fi
        local ldflags="-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION"
        for cmd in operator adapter; do
            (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN/keda-$cmd" "github.com/kedacore/keda/v2/cmd/$cmd")
            echo "$KEDA_VERSION" > "$BIN/.keda-$cmd.version"
        done
        echo "==> KEDA built in $((SECONDS - start)) s"
    fi
    tests/k8s/cluster/binary-image.sh "k8s-local/keda-operator:$KEDA_VERSION" "$BIN/keda-operator" 1000:1000
    tests/k8s/cluster/binary-image.sh "k8s-local/keda-adapter:$KEDA_VERSION" "$BIN/keda-adapter" 1000:1000
}

build_one() {
    case "$1" in
        coredns) install coredns github.com/coredns/coredns "$COREDNS_VERSION" "k8s-local/coredns:$COREDNS_VERSION" ;;
        metrics-server) install metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server "$METRICS_SERVER_VERSION" \
            "k8s-local/metrics-server:$METRICS_SERVER_VERSION" ;;
        keda) keda ;;
        *) echo "unknown add-on '$1' (coredns metrics-server keda)" >&2; exit 2 ;;
    esac
}

# render NAME MODULE@VERSION BASE: upstream's kustomize BASE (a directory of the module at the pin)
# through our kustomization tests/k8s/addons/NAME, with @VERSION@ filled in.
render() {
    local name=$1 module=$2 base=$3 dir work
    dir=$(go mod download -json "$module" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    [ -d "$dir/$base" ] || { echo "no $base in $module" >&2; exit 1; }
    work=$(mktemp -d)
    sed "s/@VERSION@/${module#*@}/" "tests/k8s/addons/$name/kustomization.yaml" > "$work/kustomization.yaml"
    # Kustomize takes relative paths only.
    printf 'resources:\n  - %s\n' "$(realpath --relative-to="$work" "$dir/$base")" >> "$work/kustomization.yaml"
    "$K/bin/kubectl" kustomize --load-restrictor LoadRestrictionsNone "$work"
    rm -rf "$work"
}

deploy() {
    . tests/k8s/cluster/lib.sh
    tests/k8s/cluster/import-images.sh "k8s-local/metrics-server:$METRICS_SERVER_VERSION" \
        "k8s-local/keda-operator:$KEDA_VERSION" "k8s-local/keda-adapter:$KEDA_VERSION"
    # Server-side apply: KEDA's ScaledJob CRD is too big for the last-applied annotation.
    render metrics-server "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" manifests/base \
        | kubectl_ apply --server-side -f - >/dev/null
    render keda "github.com/kedacore/keda/v2@$KEDA_VERSION" config/minimal | kubectl_ apply --server-side -f - >/dev/null
    kubectl_ -n kube-system rollout status deployment/metrics-server --timeout=180s
    kubectl_ -n keda rollout status deployment/keda-operator --timeout=180s
    kubectl_ -n keda rollout status deployment/keda-metrics-apiserver --timeout=180s
    kubectl_ wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io apiservice/v1beta1.external.metrics.k8s.io --timeout=180s
    echo "==> metrics-server $METRICS_SERVER_VERSION and KEDA $KEDA_VERSION running"
}

case "${1:-}" in
    build) shift; [ $# -gt 0 ] || set -- coredns metrics-server keda
        for name in "$@"; do build_one "$name"; done ;;
    deploy) deploy ;;
    *) echo "usage: $0 build [coredns|metrics-server|keda...] | deploy" >&2; exit 2 ;;
esac
