#!/usr/bin/env bash
# Build the images the Compose stack runs and write build/compose-images.env, the env file that tells
# Compose which image names to use (passed after .env, so it wins for the image variables only).
#
# BUILD_MODE (the one switch, docs/compose.md):
#   online   official bases from a registry: app FROM python:3.13-slim-trixie with packages from the
#            index; Postgres/Redis/RabbitMQ are the official images, pulled by Compose.
#   offline  everything from Debian 13 packages and a local wheelhouse: blueprint/debian:trixie
#            (debootstrap), blueprint/python, build/wheelhouse, blueprint/{postgres,redis,rabbitmq}.
#   auto     (default) online when the official images are already here or can be pulled, else offline;
#            always offline under CI (CI=true), which has no registry.
# IMAGE_NAMESPACE (default blueprint) names the stack's images, NS/app:TAG and NS/app:latest etc.: a
# benchmark or a second checkout can build without retagging the user's images. The shared offline
# bases (blueprint/debian, blueprint/python) keep their names.
# The app image is built from the configured project (compose/images/app/prepare.sh, docs/your-project.md):
# PROJECT_DIR, PROJECT_REQUIREMENTS, DJANGO_SETTINGS_MODULE and BASE_PYTHON, from the environment or .env
# (ENV_FILE); by default the reference project in app/.
# PROFILE=observability (make up PROFILE=..., compose/observability.yaml) also builds NS/monitoring:trixie:
# Prometheus, Alertmanager and the exporters from Debian 13 packages, in both modes (the official images of
# those projects name their binaries and paths differently; one recipe keeps one set of commands).
# Tags: app and proxy get the git description (IMAGE_TAG overrides it; build/compose-images.env names
# it), `latest` and the release version in VERSION. Labels (OCI), added to every image built here:
# version = VERSION, revision = the commit, source = IMAGE_SOURCE (default: the chart's home); title and
# licences in each Dockerfile.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
say() { echo "==> $*"; }

OFFICIAL_IMAGES="python:3.13-slim-trixie debian:trixie-slim postgres:17 redis:8 rabbitmq:4"
OUT=${COMPOSE_IMAGES_ENV:-build/compose-images.env}
VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
GIT_REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
TAG=${IMAGE_TAG:-$VERSION}
RELEASE=$(cat VERSION)
SOURCE=${IMAGE_SOURCE:-$(awk '/^home:/{print $2}' helm/django-celery/Chart.yaml)}
NS=${IMAGE_NAMESPACE:-blueprint}

resolve_mode() {
  case "${BUILD_MODE:-auto}" in
    online | offline) echo "$BUILD_MODE"; return ;;
    auto) ;;
    *) echo "ERROR: BUILD_MODE must be online, offline or auto (got '$BUILD_MODE')" >&2; exit 1 ;;
  esac
  if [ -n "${CI:-}" ] && [ "${CI:-}" != false ]; then echo offline; return; fi
  local missing=""
  for image in $OFFICIAL_IMAGES; do docker image inspect "$image" >/dev/null 2>&1 || missing="$missing $image"; done
  [ -z "$missing" ] && { echo online; return; }
  # One bounded probe: a registry that answers gets the ordinary path.
  if timeout 60 docker pull -q python:3.13-slim-trixie >/dev/null 2>&1; then echo online; else echo offline; fi
}

build() { # build IMAGE_NAME CONTEXT [docker build args...]
  local name=$1 context=$2; shift 2
  local log; log=$(mktemp)
  local began=$SECONDS
  # The OCI labels every image shares, here once (each Dockerfile labels its title and licence); a label
  # changes only the image's config, so a new revision invalidates no layer.
  if docker build --label org.opencontainers.image.version="$RELEASE" --label org.opencontainers.image.revision="$GIT_REVISION" \
      --label org.opencontainers.image.source="$SOURCE" -t "$name" "$@" "$context" >"$log" 2>&1; then
    rm -f "$log"
    echo "    built $name in $((SECONDS - began)) s"
  else
    tail -40 "$log" >&2; rm -f "$log"; echo "ERROR: building $name failed" >&2; return 1
  fi
}

# The observability profile's image, only when the profile is used; prints its env line (to stdout).
monitoring() { # monitoring BASE_IMAGE
  case " ${PROFILE:-} " in
    *observability*) ;;
    *) echo "# MONITORING_IMAGE: not built (PROFILE=observability builds $NS/monitoring)"; return ;;
  esac
  build "$NS/monitoring:trixie" compose/images/monitoring --build-arg BASE_IMAGE="$1" >&2
  echo "MONITORING_IMAGE=$NS/monitoring:trixie"
}

MODE=$(resolve_mode)
say "building the Compose images ($MODE; BUILD_MODE=${BUILD_MODE:-auto})"
mkdir -p build
start=$SECONDS
if [ "$MODE" = offline ]; then
  step=$SECONDS
  compose/images/debian/build.sh
  compose/images/python/build.sh
  # The app's project, dependencies, Python and wheelhouse (docs/your-project.md): refusals stop here.
  compose/images/app/prepare.sh offline >build/app-build-args
  mapfile -t app_build <build/app-build-args
  echo "    base, Python image and wheelhouse ready in $((SECONDS - step)) s"
  base=${BASE_IMAGE:-blueprint/debian:trixie}
  # Independent builds, mostly waiting on the apt mirror: run them side by side.
  pids=()
  build "$NS/postgres:17" compose/images/postgres --build-arg BASE_IMAGE="$base" & pids+=($!)
  build "$NS/redis:8" compose/images/redis --build-arg BASE_IMAGE="$base" & pids+=($!)
  build "$NS/rabbitmq:4" compose/images/rabbitmq --build-arg BASE_IMAGE="$base" & pids+=($!)
  build "$NS/proxy:$TAG" compose/images/proxy -t "$NS/proxy:latest" -t "$NS/proxy:$RELEASE" --build-arg BASE_IMAGE="$base" & pids+=($!)
  build "$NS/backup:$TAG" compose/images/backup -t "$NS/backup:latest" -t "$NS/backup:$RELEASE" --build-arg BASE_IMAGE="$base" & pids+=($!)
  build "$NS/app:$TAG" "${app_build[0]}" -f compose/images/app/Dockerfile -t "$NS/app:latest" -t "$NS/app:$RELEASE" \
    "${app_build[@]:1}" & pids+=($!)
  for pid in "${pids[@]}"; do wait "$pid"; done
  # S3 mode (STORAGE=s3, compose/compose.s3.yaml) and the local backup store (BACKUP_STORE=local,
  # compose/backup-store.yaml): the object store, built from the Go module proxy.
  s3_image="# S3_IMAGE: not built (STORAGE=s3 or BACKUP_STORE=local builds blueprint/s3)"
  if [ "${STORAGE:-filesystem}" = s3 ] || [ "${BACKUP_STORE:-}" = local ]; then
    compose/images/s3/build.sh image
    s3_image="S3_IMAGE=blueprint/s3:$(compose/images/s3/build.sh version)"
  fi
  monitoring_image=$(monitoring "$base")
  cat >"$OUT" <<ENV
# Written by compose/scripts/build-images.sh ($MODE build of $VERSION); do not edit.
APP_IMAGE=$NS/app:$TAG
PROXY_IMAGE=$NS/proxy:$TAG
BACKUP_IMAGE=$NS/backup:$TAG
$monitoring_image
POSTGRES_IMAGE=$NS/postgres:17
REDIS_IMAGE=$NS/redis:8
RABBITMQ_IMAGE=$NS/rabbitmq:4
$s3_image
ENV
else
  build "$NS/proxy:$TAG" compose/images/proxy -t "$NS/proxy:latest" -t "$NS/proxy:$RELEASE" --build-arg BASE_IMAGE=debian:trixie-slim
  build "$NS/backup:$TAG" compose/images/backup -t "$NS/backup:latest" -t "$NS/backup:$RELEASE" --build-arg BASE_IMAGE=debian:trixie-slim
  compose/images/app/prepare.sh online >build/app-build-args
  mapfile -t app_build <build/app-build-args
  build "$NS/app:$TAG" "${app_build[0]}" -f compose/images/app/Dockerfile -t "$NS/app:latest" -t "$NS/app:$RELEASE" \
    "${app_build[@]:1}"
  monitoring_image=$(monitoring debian:trixie-slim)
  cat >"$OUT" <<ENV
# Written by compose/scripts/build-images.sh ($MODE build of $VERSION); do not edit.
# Postgres/Redis/RabbitMQ: the official images (compose/compose.yaml defaults).
APP_IMAGE=$NS/app:$TAG
PROXY_IMAGE=$NS/proxy:$TAG
BACKUP_IMAGE=$NS/backup:$TAG
$monitoring_image
ENV
fi
say "images ready in $((SECONDS - start)) s ($OUT):"
grep -v '^#' "$OUT" | sed 's/^/    /'
