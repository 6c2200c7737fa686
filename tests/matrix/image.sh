#!/usr/bin/env bash
# The image of the matrix's newest end: Debian testing's Python 3.14 (compose/images/python/build.sh,
# BASE_PYTHON=3.14) plus the redis-server and PostgreSQL that tests/app/app_services.py starts, so the
# same suite runs inside it as on the host. Idempotent (label blueprint.recipe). --name prints the name.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
IMAGE=blueprint/matrix:3.14-forky
if [ "${1:-}" = --name ]; then echo "$IMAGE"; exit 0; fi
BASE_PYTHON=3.14 compose/images/python/build.sh
BASE=$(BASE_PYTHON=3.14 compose/images/python/build.sh --name)
RECIPE="$(sha256sum "$0" | cut -c1-16)-$(docker image inspect -f '{{.Id}}' "$BASE" | cut -c8-23)"
if [ "$(docker image inspect -f '{{index .Config.Labels "blueprint.recipe"}}' "$IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
  exit 0
fi
echo "==> building $IMAGE"
docker build -q -t "$IMAGE" --build-arg BASE="$BASE" --build-arg RECIPE="$RECIPE" - >/dev/null <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
# util-linux: runuser (initdb refuses root). The suite runs as root, as on the host.
RUN apt-get update && apt-get install -y --no-install-recommends redis-server postgresql util-linux \
    && rm -rf /var/lib/apt/lists/*
ARG RECIPE
LABEL blueprint.recipe=${RECIPE}
DOCKERFILE
