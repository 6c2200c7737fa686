#!/usr/bin/env bash
# Render the kustomize base (k8s/base/django-celery.yaml) from the chart, or check it has not drifted.
# Usage: scripts/k8s-base.sh render|check
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
BASE=k8s/base/django-celery.yaml

render() {
    # Release "django-celery" gives plain names (django-celery-web...); the namespace comes from the overlays.
    echo "# Rendered from helm/django-celery with k8s/base/values.yaml by \`make k8s-render\`: do not edit."
    helm template django-celery helm/django-celery --values k8s/base/values.yaml --namespace default \
        --api-versions keda.sh/v1alpha1
}

case "${1:-}" in
    render)
        render > "$BASE.tmp" && mv "$BASE.tmp" "$BASE"
        echo "==> wrote $BASE ($(grep -c '^kind:' "$BASE") objects)" ;;
    check)
        if ! diff -u "$BASE" <(render) > build/k8s-base.diff 2>&1; then
            cat build/k8s-base.diff >&2
            echo "k8s/base/django-celery.yaml is out of date with the chart: run \`make k8s-render\` and commit it" >&2
            exit 1
        fi
        echo "==> $BASE matches the chart" ;;
    *) echo "usage: $0 render|check" >&2; exit 2 ;;
esac
