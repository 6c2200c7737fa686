#!/usr/bin/env bash
# Create/refresh the host virtualenv (.venv) from the universal lock, with hashes.
# Re-syncs only when requirements/dev.lock changed since the last sync.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
VENV=.venv
LOCK=requirements/dev.lock
STAMP=$VENV/.synced-$(sha256sum "$LOCK" | cut -c1-16)
# deploykit/ (the package the app uses) from this checkout's source, like an editable install: a .pth
# file puts deploykit/src on the path of every process of the venv (the tests, the app/bin/* scripts they
# start, app/bin/dev) whatever their working directory or PYTHONPATH. Checked on every call.
link_deploykit() {
  local site want="$PWD/deploykit/src"
  site=$($VENV/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  [ "$(cat "$site/deploykit.pth" 2>/dev/null)" = "$want" ] || echo "$want" >"$site/deploykit.pth"
}
[ -f "$STAMP" ] && { link_deploykit; exit 0; }
command -v python3 >/dev/null || { echo "python3 (3.11+) is required on the host" >&2; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "python3 must be 3.11 or newer" >&2; exit 1; }
[ -x $VENV/bin/python ] || { echo "==> creating virtualenv $VENV"; python3 -m venv $VENV; }
# uv is pinned by the lock; bootstrap it with pip, then let it sync the exact set.
UV_VERSION=$(awk -F'[= ]+' '/^uv==/{print $2; exit}' "$LOCK")
[ -x $VENV/bin/uv ] || $VENV/bin/pip install --quiet "uv==$UV_VERSION"
echo "==> syncing $VENV from $LOCK"
UV_NATIVE_TLS=1 $VENV/bin/uv pip sync --quiet --python $VENV/bin/python --require-hashes "$LOCK"
rm -f $VENV/.synced-*
touch "$STAMP"
link_deploykit
