#!/usr/bin/env bash
# Create/refresh the host virtualenv (.venv) from the universal lock, with hashes.
# Re-syncs only when requirements/dev.lock changed since the last sync.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
VENV=.venv
LOCK=requirements/dev.lock
STAMP=$VENV/.synced-$(sha256sum "$LOCK" | cut -c1-16)
# deploykit/ (the package the app uses) installed editable from this checkout (PEP 660), like any
# dependency: the tests, the deploykit-* start scripts they run and app/bin/dev import the installed package,
# whose metadata (version, dependencies) importlib.metadata reads. --no-deps: its dependencies are the
# locked set above. Reinstalled when deploykit/pyproject.toml changes, or after a sync (which removes
# what the lock does not name); the source itself needs no reinstall (the editable install points at it).
install_deploykit() {
  local stamp
  stamp=$VENV/.deploykit-$( { pwd; cat deploykit/pyproject.toml deploykit/bin/*; } | sha256sum | cut -c1-16)
  [ -f "$stamp" ] && return 0
  echo "==> installing deploykit (editable) into $VENV"
  # A venv made before deploykit was installed has its source on the path through a .pth of its own.
  rm -f "$($VENV/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/deploykit.pth"
  UV_NATIVE_TLS=1 $VENV/bin/uv pip install --quiet --python $VENV/bin/python --no-deps --editable ./deploykit
  rm -f $VENV/.deploykit-*
  touch "$stamp"
}
[ -f "$STAMP" ] && { install_deploykit; exit 0; }
command -v python3 >/dev/null || { echo "python3 (3.11+) is required on the host" >&2; exit 1; }
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "python3 must be 3.11 or newer" >&2; exit 1; }
[ -x $VENV/bin/python ] || { echo "==> creating virtualenv $VENV"; python3 -m venv $VENV; }
# uv is pinned by the lock; bootstrap it with pip, then let it sync the exact set.
UV_VERSION=$(awk -F'[= ]+' '/^uv==/{print $2; exit}' "$LOCK")
[ -x $VENV/bin/uv ] || $VENV/bin/pip install --quiet "uv==$UV_VERSION"
echo "==> syncing $VENV from $LOCK"
UV_NATIVE_TLS=1 $VENV/bin/uv pip sync --quiet --python $VENV/bin/python --require-hashes "$LOCK"
rm -f $VENV/.synced-* $VENV/.deploykit-*
touch "$STAMP"
install_deploykit
