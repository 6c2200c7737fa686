#!/usr/bin/env bash
# Render the kustomize base (k8s/base/django-celery.yaml) from the chart, or check it has not drifted.
# Usage: k8s/render-base.sh render|check
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
export PATH=$PWD/.tools/bin:$PATH
BASE=k8s/base/django-celery.yaml
mkdir -p build
FRESH=build/k8s-base.yaml

# Release "django-celery" gives plain names (django-celery-web...); the namespace comes from the overlays.
{
    echo "# Rendered from helm/django-celery with k8s/base/values.yaml by \`make k8s-render\`: do not edit."
    helm template django-celery helm/django-celery --values k8s/base/values.yaml --namespace default \
        --api-versions keda.sh/v1alpha1
} > "$FRESH"

case "${1:-}" in
    render)
        mv "$FRESH" "$BASE"
        echo "==> wrote $BASE ($(grep -c '^kind:' "$BASE") objects)" ;;
    check)
        if ! diff -u "$BASE" "$FRESH" >&2; then
            echo "k8s/base/django-celery.yaml is out of date with the chart: run \`make k8s-render\` and commit it" >&2
            exit 1
        fi
        echo "==> $BASE matches the chart" ;;
    *) echo "usage: $0 render|check" >&2; exit 2 ;;
esac
