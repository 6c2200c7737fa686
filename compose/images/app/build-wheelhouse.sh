#!/usr/bin/env bash
# Download every wheel of requirements/app.lock with the TARGET interpreter (Debian 13's Python 3.13),
# so offline image builds and VM deploys install exactly the locked set with `pip install --no-index`.
# Resolving with the host's Python would pick other markers (see shared pitfalls), so this runs inside
# a throwaway container of the local Python image, trusting the host's CA bundle only for the download.
#   WHEELHOUSE   output directory (default build/wheelhouse)
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
WHEELHOUSE=${WHEELHOUSE:-build/wheelhouse}
PY_IMAGE=${PY_IMAGE:-blueprint/python:3.13-trixie}
LOCK=requirements/app.lock
STAMP="$WHEELHOUSE/.lock-$(sha256sum "$LOCK" | cut -c1-16)"
[ -f "$STAMP" ] && exit 0
compose/images/python/build.sh
CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$WHEELHOUSE"
echo "==> downloading the locked wheels for Python 3.13 into $WHEELHOUSE"
docker run --rm --user "$(id -u):$(id -g)" -e HOME=/tmp \
  -v "$PWD/$WHEELHOUSE:/wh" -v "$PWD/requirements:/req:ro" -v "$CA:/ca.crt:ro" -e PIP_CERT=/ca.crt \
  -e PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY_IMAGE" \
  sh -c 'python3 -m venv /tmp/v && /tmp/v/bin/pip download --quiet --only-binary=:all: --require-hashes -d /wh -r /req/app.lock'
rm -f "$WHEELHOUSE"/.lock-*
touch "$STAMP"
