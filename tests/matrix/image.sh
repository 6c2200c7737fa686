#!/usr/bin/env bash
# The image of the matrix's newest end: Debian testing's Python 3.14 (compose/images/python/build.sh,
# BASE_PYTHON=3.14) plus the redis-server and PostgreSQL that tests/app/app_services.py starts, so the
# same suite runs inside it as on the host. Idempotent (compose/images/build-derived.sh). --name prints it.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
IMAGE=blueprint/matrix:3.14-forky
if [ "${1:-}" = --name ]; then echo "$IMAGE"; exit 0; fi
BASE_PYTHON=3.14 compose/images/python/build.sh
BASE=$(BASE_PYTHON=3.14 compose/images/python/build.sh --name)
# util-linux: runuser (initdb refuses root). The suite runs as root, as on the host.
compose/images/build-derived.sh "$IMAGE" "$BASE" "$0" <<'DOCKERFILE'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server postgresql util-linux \
    && rm -rf /var/lib/apt/lists/*
DOCKERFILE
