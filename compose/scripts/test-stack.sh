#!/usr/bin/env bash
# `make test-compose[-rabbitmq]`: build the images (offline unless BUILD_MODE says otherwise), bring up a
# throw-away stack under its own project name and ports (so a user's `make up` is untouched), run the
# smoke suite against it, print the logs if anything failed, and always tear it down with its volumes.
# Usage: test-stack.sh redis|rabbitmq [filesystem|s3] [observability|-] [backup]
# backup: a backup store beside the stack (compose/backup-store.yaml) and the backup/restore test
# (tests/smoke/test_backup.py), in the same run.
# observability: the stack with the observability profile (compose/observability.yaml) and its live tests
# (tests/smoke/test_observability.py), in the same run: a stack of its own would cost minutes more.
# PROJECT_ENV=FILE: a project of its own instead of app/, deployed from that configuration file alone (as
# `make up PROJECT_ENV=FILE` does; docs/your-project.md), then only the generic smoke tests (not the
# reference project's API: `-m "not reference"`).
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
BROKER=${1:-redis}
export STORAGE=${2:-filesystem}
export PROFILE=${3:-}
[ "$PROFILE" = - ] && PROFILE=
BACKUP=${4:-}
export BUILD_MODE=${BUILD_MODE:-offline}
# (Not `$([ ... ] && echo -s3)`: an assignment takes its substitution's status, and errexit would stop here.)
PROJECT=blueprint-test-$BROKER
if [ "$STORAGE" = s3 ]; then PROJECT+=-s3; fi
PROJECT_ENV=${PROJECT_ENV:-}
if [ -n "$PROJECT_ENV" ]; then
  # shellcheck disable=SC1090
  name=$(set -a && . "$PROJECT_ENV" && basename "${PROJECT_DIR:?PROJECT_DIR is not set in $PROJECT_ENV}")
  PROJECT=blueprint-test-$name
fi
# The reference images' names go where the other suites read them; a project's to a file of its own.
IMAGES_ENV=build/compose-images.env
[ -n "$PROJECT_ENV" ] && IMAGES_ENV=build/$PROJECT-images.env
ENV_FILE=build/$PROJECT.env
CA_FILE=build/$PROJECT-ca.crt
# Host ports of the test stack (loopback only), away from `make up`'s 8443/8080.
export PROXY_BIND=127.0.0.1 PROXY_HOSTNAME=localhost
export PROXY_HTTPS_PORT=${SMOKE_HTTPS_PORT:-18443} PROXY_HTTP_PORT=${SMOKE_HTTP_PORT:-18080}
say() { echo "==> $*"; }

scripts/setup/ensure-chromium.sh
if [ -n "$PROJECT_ENV" ]; then
  # The project's own images, under its own names (the reference project's stay as they are).
  (set -a && . "$PROJECT_ENV" && IMAGE_NAMESPACE=blueprint-$name COMPOSE_IMAGES_ENV=$IMAGES_ENV ENV_FILE=/dev/null \
    compose/scripts/build-images.sh)
else
  # The reference smoke suite checks app/: a PROJECT_DIR in .env or the shell is not built here.
  PROJECT_DIR=app PROJECT_REQUIREMENTS=requirements/app.lock DJANGO_SETTINGS_MODULE=config.settings ENV_FILE=/dev/null \
    compose/scripts/build-images.sh
fi

mkdir -p build
rm -f "$ENV_FILE" "$CA_FILE"
compose/scripts/gen-env.sh "$ENV_FILE" >/dev/null
VARIANTS=()
[ "$BROKER" = rabbitmq ] && VARIANTS+=(-f compose/rabbitmq.yaml)
[ "$STORAGE" = s3 ] && VARIANTS+=(-f compose/compose.s3.yaml)
if [ "$PROFILE" = observability ]; then
  VARIANTS+=(-f compose/observability.yaml)
  [ "$BROKER" = rabbitmq ] && VARIANTS+=(-f compose/observability.rabbitmq.yaml)
  # Loopback ports away from `make up`'s 9090/9093.
  export PROMETHEUS_PORT=${SMOKE_PROMETHEUS_PORT:-19090} ALERTMANAGER_PORT=${SMOKE_ALERTMANAGER_PORT:-19093}
  # The shipped rules stay as they are; this extra rules file (loaded through PROMETHEUS_EXTRA_RULES, as a
  # user's settings would be) adds a copy of them with `for: 0s`, so a stopped pool fires within seconds.
  export PROMETHEUS_EXTRA_RULES=build/$PROJECT-fast-rules.yml
  .venv/bin/python tests/smoke/fast_rules.py helm/django-celery/files/alerts.yml "$PROMETHEUS_EXTRA_RULES"
  export SMOKE_PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT SMOKE_ALERTMANAGER_URL=http://127.0.0.1:$ALERTMANAGER_PORT
fi
if [ "$BACKUP" = backup ]; then
  # The backup target: the S3 server's image (built from the Go module proxy once, then a no-op), not off this
  # host -- which is all a test needs of it.
  compose/images/s3/build.sh image >/dev/null
  export S3_IMAGE; S3_IMAGE=blueprint/s3:$(compose/images/s3/build.sh version)
  VARIANTS+=(-f compose/backup-store.yaml)
  export SMOKE_BACKUP=1
fi
ENV_FILES=(--env-file "$ENV_FILE")
[ -n "$PROJECT_ENV" ] && ENV_FILES+=(--env-file "$PROJECT_ENV")
# The worker pools the env files declare, as `make up` writes them (docs/compose.md#worker-pools).
POOLS_FILE=build/$PROJECT-pools.yaml
.venv/bin/python compose/scripts/gen-pools.py "${ENV_FILES[@]}" "${VARIANTS[@]}" -o "$POOLS_FILE"
COMPOSE=(docker compose -p "$PROJECT" -f compose/compose.yaml "${VARIANTS[@]}" -f "$POOLS_FILE" "${ENV_FILES[@]}"
  --env-file "$IMAGES_ENV")

status=1
finish() {
  if [ "$status" != 0 ]; then
    echo "==> FAILED: logs of $PROJECT" >&2
    "${COMPOSE[@]}" ps -a >&2 || true
    "${COMPOSE[@]}" logs --no-color --tail=150 >&2 || true
  fi
  say "tearing down $PROJECT"
  "${COMPOSE[@]}" down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true
  say "$PROJECT: $([ "$status" = 0 ] && echo PASSED || echo FAILED) in $((SECONDS - started)) s"
}
started=$SECONDS
trap finish EXIT
"${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true  # leftovers of an interrupted run

say "starting $PROJECT (broker: $BROKER)"
up_start=$SECONDS
"${COMPOSE[@]}" up -d --wait --wait-timeout 240 --quiet-pull
say "all services healthy in $((SECONDS - up_start)) s"

# The proxy's local CA root: the smoke tests verify TLS against it (no verify=False anywhere).
for _ in $(seq 1 60); do
  "${COMPOSE[@]}" cp proxy:/data/caddy/pki/authorities/local/root.crt "$CA_FILE" >/dev/null 2>&1 && break
  sleep 0.5
done
[ -s "$CA_FILE" ] || { echo "ERROR: the proxy's CA certificate did not appear" >&2; exit 1; }

get() { sed -n "s/^$1=//p" "$ENV_FILE" | tail -n1; }
export SMOKE_BASE_URL="https://localhost:$PROXY_HTTPS_PORT"
export SMOKE_HTTP_URL="http://localhost:$PROXY_HTTP_PORT"
export SMOKE_CA_FILE=$CA_FILE SMOKE_ENV_FILE=$ENV_FILE
export SMOKE_FLOWER_USER; SMOKE_FLOWER_USER=$(get FLOWER_USER)
export SMOKE_FLOWER_PASSWORD; SMOKE_FLOWER_PASSWORD=$(get FLOWER_PASSWORD)
export SMOKE_ADMIN_USER; SMOKE_ADMIN_USER=$(get DJANGO_SUPERUSER_USERNAME)
export SMOKE_ADMIN_PASSWORD; SMOKE_ADMIN_PASSWORD=$(get DJANGO_SUPERUSER_PASSWORD)
export SMOKE_BROKER=$BROKER
export SMOKE_STORAGE=$STORAGE
export SMOKE_COMPOSE="${COMPOSE[*]}"
export SMOKE_ARTIFACTS=tests/smoke/artifacts/$BROKER
# The pools the configuration runs (services with CELERY_WORKER_QUEUES, not scaled to 0), the queues they
# consume, and each pool's queues (what the generic tests expect), one line each.
pools=$("${COMPOSE[@]}" config --format json | .venv/bin/python -c '
import json, sys
services = json.load(sys.stdin)["services"]
pools = {n: s["environment"]["CELERY_WORKER_QUEUES"] for n, s in services.items()
         if "CELERY_WORKER_QUEUES" in s.get("environment", {}) and (s.get("deploy") or {}).get("replicas", 1) != 0}
print(",".join(sorted(pools)), ",".join(sorted({q for qs in pools.values() for q in qs.split(",") if q})),
      json.dumps(pools), sep="\n")')
{ read -r SMOKE_POOLS; read -r SMOKE_QUEUES; read -r SMOKE_POOL_QUEUES; } <<<"$pools"
export SMOKE_POOLS SMOKE_QUEUES SMOKE_POOL_QUEUES
markers=()
[ -n "$PROJECT_ENV" ] && markers=(-m "not reference")

say "running the smoke suite (pools: $SMOKE_POOLS; queues: $SMOKE_QUEUES)"
.venv/bin/python -m pytest tests/smoke -p no:cacheprovider -q -rA --timeout 300 "${markers[@]}" ${SMOKE_PYTEST_ARGS:-}
status=0
