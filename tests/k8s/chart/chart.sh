#!/usr/bin/env bash
# The chart (helm/django-celery) on the local test cluster (tests/k8s/cluster/cluster.sh up): images from
# `make images` imported into the node's containerd, static volumes, the front door, helm --wait.
#   install [HELM ARGS...]    helm upgrade --install with tests/k8s/chart/values.yaml, wait for the
#                             migration Job and every pod, then the front door (tests/k8s/chart/front-door.yaml)
#   uninstall                 helm uninstall --wait and the front door (PVCs stay: documented)
# Names: NAMESPACE (default django-celery), RELEASE (default django-celery).
# K8S_IMAGES_FROM: import (default) copies the `make images` images into the node's containerd;
#   registry publishes the release (scripts/release/release.sh) into a registry on 127.0.0.1 started for
#   the cluster run (stopped by cluster.sh down), installs the chart from oci:// and lets the node's
#   containerd pull every image from it: nothing imported but the pause image.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
. tests/k8s/cluster/versions.env
. tests/k8s/cluster/lib.sh
export KUBECONFIG=$K/pki/admin.kubeconfig PATH=$K/bin:$PWD/.tools/bin:$PATH
NAMESPACE=${NAMESPACE:-django-celery}
RELEASE=${RELEASE:-django-celery}
case "$RELEASE" in *django-celery*) FULL=$RELEASE ;; *) FULL=$RELEASE-django-celery ;; esac
VALUES=tests/k8s/chart/values.yaml
HTTPS_PORT=${LOCAL_PORT:-28443}   # where tests/smoke/run-k8s.sh forwards the front door's 443
IMAGES_ENV=build/compose-images.env

image() { sed -n "s/^$1=//p" "$IMAGES_ENV"; }

# The cluster has no volume provisioner: one hostPath PV per claim of the release, pre-bound to it
# (claimRef), in a fresh directory owned by the uid that writes it (hostPath ignores fsGroup).
# The uids are the runAsUser values of tests/k8s/chart/values.yaml.
volumes() {
    local claim uid dir
    for spec in "$FULL-media:10001" "data-$FULL-redis-0:100" "data-$FULL-postgresql-0:100"; do
        claim=${spec%:*} uid=${spec#*:} dir=$K/volumes/$NAMESPACE/${spec%:*}
        kubectl get pv "$NAMESPACE-$claim" >/dev/null 2>&1 && continue
        rm -rf "$dir"; mkdir -p "$dir"; chown "$uid:$uid" "$dir"; chmod 0750 "$dir"
        kubectl apply -f - >/dev/null <<PV
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $NAMESPACE-$claim
  labels: {k8s-local/test-volume: "true"}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: k8s-local
  claimRef: {namespace: $NAMESPACE, name: $claim}
  hostPath: {path: $dir, type: Directory}
PV
    done
}

# A CA and a localhost certificate for the front door, made per run (tests/smoke/run-k8s.sh trusts ca.crt).
tls_secret() {
    kubectl -n "$NAMESPACE" get secret front-door-tls >/dev/null 2>&1 && return 0
    local d; d=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=k8s-local-test-ca \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$d/tls.key" -out "$d/tls.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$d/ext"
    openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
        -extfile "$d/ext" -out "$d/tls.crt" 2>/dev/null
    kubectl -n "$NAMESPACE" create secret generic front-door-tls \
        --from-file="$d/ca.crt" --from-file="$d/tls.crt" --from-file="$d/tls.key" >/dev/null
    rm -rf "$d"
}

# The release registry (K8S_IMAGES_FROM=registry): started and published into once per cluster run
# (chart.sh install runs again for the upgrade test), its address in $K/registry/address.
release_registry() {
    local dir=$K/registry address
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then cat "$dir/address"; return; fi
    address=$(scripts/release/local-registry.sh start "$dir")
    RELEASE_ALLOW_DIRTY=1 scripts/release/release.sh "$address/blueprint" "$dir/release" >&2
    mkdir -p "$K/containerd/certs.d/$address"
    cat >"$K/containerd/certs.d/$address/hosts.toml" <<TOML
server = "http://$address"
[host."http://$address"]
  capabilities = ["pull", "resolve"]
TOML
    echo "$address"
}

install() {
    [ -f "$IMAGES_ENV" ] || { echo "no $IMAGES_ENV: run make images first" >&2; exit 1; }
    local app proxy chart pull=Never start=$SECONDS
    if [ "${K8S_IMAGES_FROM:-import}" = registry ]; then
        local registry version; version=$(cat VERSION)
        registry=$(release_registry)/blueprint
        app=$registry/app:$version proxy=$registry/proxy:$version pull=IfNotPresent
        chart=(oci://"$registry"/django-celery --version "$version" --plain-http
            --set image.repository="$registry/app" --set image.pullPolicy=$pull)
        local value image
        for pair in redis:redis postgresql:postgres; do  # the chart's value : the released image
            value=${pair%:*} image=${pair#*:}
            chart+=(--set "$value.image.repository=$registry/$image" --set "$value.image.tag=$version"
                --set "$value.image.pullPolicy=$pull")
        done
    else
        app=$(image APP_IMAGE) proxy=$(image PROXY_IMAGE)
        tests/k8s/cluster/import-images.sh "$app" "$proxy" "$(image POSTGRES_IMAGE)" "$(image REDIS_IMAGE)"
        chart=(helm/django-celery)
    fi
    kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE" >/dev/null
    volumes
    tls_secret
    echo "==> helm upgrade --install $RELEASE ($app)"
    helm upgrade --install "$RELEASE" "${chart[@]}" --namespace "$NAMESPACE" -f "$VALUES" \
        --set image.tag="${app##*:}" --set config.env.DJANGO_CSRF_TRUSTED_ORIGINS="https://localhost:$HTTPS_PORT" \
        --wait --timeout 10m "$@"
    kubectl -n "$NAMESPACE" wait --for=condition=Complete job \
        -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=migrate" --timeout=300s
    sed -e "s#@PROXY_IMAGE@#$proxy#" -e "s#@HTTPS_PORT@#$HTTPS_PORT#" -e "s#@FULLNAME@#$FULL#" \
        -e "s#imagePullPolicy: Never#imagePullPolicy: $pull#" \
        tests/k8s/chart/front-door.yaml | kubectl -n "$NAMESPACE" apply -f - >/dev/null
    kubectl -n "$NAMESPACE" rollout status deployment/front-door --timeout=180s
    # helm --wait saw every Deployment and StatefulSet of the release ready.
    echo "==> $RELEASE installed and ready in $((SECONDS - start)) s"
}

uninstall() {
    kubectl -n "$NAMESPACE" delete deployment,service -l app.kubernetes.io/name=front-door --ignore-not-found --wait
    helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --timeout 5m
}

case "${1:-}" in
    install) shift; install "$@" ;;
    uninstall) uninstall ;;
    *) echo "usage: $0 install [helm args...]|uninstall" >&2; exit 2 ;;
esac
