#!/usr/bin/env bash
# Local Python 3.13 image (Debian 13 + python3 + venv), the offline stand-in for python:3.13-slim-trixie.
# Idempotent: skips when the image was built by this recipe on the current base image (label
# blueprint.recipe), so a rebuilt base reaches the Python image and, through it, the app image.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
PY_IMAGE=${PY_IMAGE:-blueprint/python:3.13-trixie}
BASE_IMAGE=${BASE_IMAGE:-blueprint/debian:trixie}
BASE_IMAGE=$BASE_IMAGE compose/images/debian/build.sh
RECIPE="$(sha256sum "$0" | cut -c1-16)-$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE" | cut -c8-23)"
if [ "$(docker image inspect -f '{{index .Config.Labels "blueprint.recipe"}}' "$PY_IMAGE" 2>/dev/null)" = "$RECIPE" ]; then
  exit 0
fi
echo "==> building $PY_IMAGE"
docker build -q -t "$PY_IMAGE" --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg RECIPE="$RECIPE" - >/dev/null <<'DOCKERFILE'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# python3-venv: the app's builder stage and the wheelhouse make virtualenvs. The app's runtime stage
# is this image too, so nothing else goes in here.
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
ARG RECIPE
LABEL blueprint.recipe=${RECIPE}
DOCKERFILE
