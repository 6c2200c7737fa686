#!/usr/bin/env bash
# The newest end of the matrix: tests/matrix/run-end.sh inside the Python 3.14 image (tests/matrix/image.sh).
# This checkout is mounted read-only at its own path, MATRIX_DIR writable (the virtualenv and uv's cache
# stay between runs); the host's uv binary, and the host's CA bundle, which alone trusts the package
# index here (TLS interception).
#   MATRIX_WHEEL, MATRIX_DIR  as for run-end.sh; UV the host's uv
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
: "${MATRIX_WHEEL:?}" "${MATRIX_DIR:?}" "${UV:?}"
CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$MATRIX_DIR"
docker run --rm -v "$PWD:$PWD:ro" -v "$PWD/$MATRIX_DIR:$PWD/$MATRIX_DIR" -w "$PWD" \
  -v "$(realpath "$UV"):/usr/local/bin/uv:ro" -v "$CA:/ca.crt:ro" -e SSL_CERT_FILE=/ca.crt \
  -e UV_CACHE_DIR="$PWD/$MATRIX_DIR/uv-cache" -e MATRIX_PYTHON=python3.14 -e MATRIX_RESOLUTION=highest \
  -e MATRIX_OVERRIDE_DJANGO=yes -e MATRIX_WHEEL -e MATRIX_DIR -e PYTEST_ARGS="${PYTEST_ARGS:-}" \
  "$(tests/matrix/image.sh --name)" tests/matrix/run-end.sh
