#!/usr/bin/env bash
# Local Python 3.13 image (Debian 13 + python3 + venv), the offline stand-in for python:3.13-slim-trixie.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
PY_IMAGE=${PY_IMAGE:-blueprint/python:3.13-trixie}
BASE_IMAGE=${BASE_IMAGE:-blueprint/debian:trixie}
docker image inspect "$PY_IMAGE" >/dev/null 2>&1 && exit 0
scripts/build-base-image.sh
echo "==> building $PY_IMAGE"
docker build -q -t "$PY_IMAGE" --build-arg BASE_IMAGE="$BASE_IMAGE" - >/dev/null <<'DOCKERFILE'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
DOCKERFILE
