#!/usr/bin/env bash
# Create/refresh the scanners virtualenv (.tools/scanners) from security/scanners.lock (hashes required).
# A separate venv: checkov pins conflict with the app (see security/scanners.in).
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
VENV=.tools/scanners
LOCK=security/scanners.lock
STAMP=$VENV/.synced-$(sha256sum "$LOCK" | cut -c1-16)
[ -f "$STAMP" ] && exit 0
scripts/setup/ensure-venv.sh  # provides the pinned uv
[ -x $VENV/bin/python ] || { echo "==> creating virtualenv $VENV"; python3 -m venv $VENV; }
echo "==> syncing $VENV from $LOCK"
UV_NATIVE_TLS=1 .venv/bin/uv pip sync --quiet --python $VENV/bin/python --require-hashes "$LOCK"
rm -f $VENV/.synced-*
touch "$STAMP"
