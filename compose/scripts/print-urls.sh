#!/usr/bin/env bash
# After `make up`: where the stack answers and how to log in (passwords stay in the env file).
# Usage: print-urls.sh ENV_FILE "COMPOSE COMMAND"
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
ENV_FILE=$1
read -r -a COMPOSE <<<"$2"
get() { local v; v=$(sed -n "s/^$1=//p" "$ENV_FILE" | tail -n1); echo "${!1:-${v:-$2}}"; }
host=$(get PROXY_HOSTNAME localhost)
port=$(get PROXY_HTTPS_PORT 8443)
admin=$(get DJANGO_ADMIN_URL admin/)
base="https://$host:$port"
ca=build/compose-ca.crt
if [ "$(get PROXY_TLS internal)" = internal ]; then
  # Caddy's local CA signs the certificate; export its root so curl/browsers can trust it.
  for _ in $(seq 1 30); do
    "${COMPOSE[@]}" cp proxy:/data/caddy/pki/authorities/local/root.crt "$ca" >/dev/null 2>&1 && break
    sleep 1
  done
fi
cat <<TEXT

The stack is up and healthy.
  App      $base/
  Admin    $base/${admin#/}   user $(get DJANGO_SUPERUSER_USERNAME admin), password DJANGO_SUPERUSER_PASSWORD in $ENV_FILE
  Flower   $base/flower/   user $(get FLOWER_USER ops), password FLOWER_PASSWORD in $ENV_FILE
  HTTP     http://$host:$(get PROXY_HTTP_PORT 8080)/ redirects to HTTPS
TEXT
if [ "${PROFILE:-}" = observability ]; then
  echo "  Metrics  Prometheus http://127.0.0.1:$(get PROMETHEUS_PORT 9090)/  Alertmanager http://127.0.0.1:$(get ALERTMANAGER_PORT 9093)/ (loopback only)"
fi
[ -f "$ca" ] && echo "  TLS      signed by the stack's local CA: $ca (e.g. curl --cacert $ca $base/readyz)"
echo "  Also     make ps | make logs | make scale-workers POOL=default N=3 | make shell | make down"
