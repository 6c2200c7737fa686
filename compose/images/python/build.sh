#!/usr/bin/env bash
# Local Python image (Debian + python3 + venv), the offline stand-in for the official python image.
# Idempotent (compose/images/build-derived.sh): a rebuilt base reaches the Python image and, through it,
# the app image.
#   BASE_PYTHON  3.13 (default): Debian 13 (trixie), Python 3.13, blueprint/python:3.13-trixie
#                3.14: Debian's testing suite (forky), whose python3 is 3.14, blueprint/python:3.14-forky
#   --name       print the image name for BASE_PYTHON and stop (build-wheelhouse.sh, app/build.sh)
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
case "${BASE_PYTHON:-3.13}" in
  3.13) suite=trixie ;;
  3.14) suite=forky ;;
  *) echo "ERROR: BASE_PYTHON must be 3.13 (Debian 13) or 3.14 (Debian testing), got '${BASE_PYTHON}'" >&2; exit 1 ;;
esac
PY_IMAGE=${PY_IMAGE:-blueprint/python:${BASE_PYTHON:-3.13}-$suite}
if [ "${1:-}" = --name ]; then echo "$PY_IMAGE"; exit 0; fi
BASE_IMAGE=${BASE_IMAGE:-blueprint/debian:$suite}
DEBIAN_SUITE=$suite BASE_IMAGE=$BASE_IMAGE compose/images/debian/build.sh
compose/images/build-derived.sh "$PY_IMAGE" "$BASE_IMAGE" "$0" <<'DOCKERFILE'
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# python3-venv: the app's builder stage and the wheelhouse make virtualenvs. The app's runtime stage
# is this image too, so nothing else goes in here.
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
DOCKERFILE
