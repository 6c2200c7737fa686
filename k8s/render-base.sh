#!/usr/bin/env bash
# Render the kustomize bases from the chart, or check they have not drifted:
#   k8s/base/django-celery.yaml         the reference project, from k8s/base/values.yaml
#   k8s/examples/bookshop/bookshop.yaml  a project of its own, from its Helm values file alone
#                                        (examples/bookshop/deploy/values.yaml, docs/your-project.md, section Helm)
# Usage: k8s/render-base.sh render|check
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
export PATH=$PWD/.tools/bin:$PATH
mkdir -p build
# OUTPUT RELEASE VALUES: release "django-celery" gives plain names (django-celery-web...); the namespace
# comes from the overlays.
BASES=(
    "k8s/base/django-celery.yaml django-celery k8s/base/values.yaml"
    "k8s/examples/bookshop/bookshop.yaml bookshop examples/bookshop/deploy/values.yaml"
)

stale=0
for spec in "${BASES[@]}"; do
    read -r base release values <<<"$spec"
    fresh=build/k8s-$(basename "$base")
    {
        echo "# Rendered from helm/django-celery with $values by \`make k8s-render\`: do not edit."
        helm template "$release" helm/django-celery --values "$values" --namespace default \
            --api-versions keda.sh/v1alpha1
    } > "$fresh"
    case "${1:-}" in
        render)
            mv "$fresh" "$base"
            echo "==> wrote $base ($(grep -c '^kind:' "$base") objects)" ;;
        check)
            if ! diff -u "$base" "$fresh" >&2; then
                echo "$base is out of date with the chart: run \`make k8s-render\` and commit it" >&2
                stale=1
            else
                echo "==> $base matches the chart"
            fi ;;
        *) echo "usage: $0 render|check" >&2; exit 2 ;;
    esac
done
exit "$stale"
