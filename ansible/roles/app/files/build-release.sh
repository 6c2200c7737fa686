#!/usr/bin/env bash
# Runs on the control machine: pack one release of the app (app/, the lock, and the wheel of deploykit/,
# the package it uses, under wheels/) and the wheelhouse for the hosts.
#   build-release.sh SOURCE_DIR WHEELHOUSE_DIR OUT_DIR [VERSION] [PYTHON]
# PYTHON (default python3) builds deploykit's wheel with pip (its build backend, setuptools, from the
# index or pip's cache: the control machine reaches the index anyway, for the wheelhouse).
# Prints one JSON object: version, release archive, wheelhouse archive and its id, deploykit's id.
# The release id defaults to a hash of the shipped sources, so the same code is the same release and a
# re-run changes nothing on the hosts. Archives are reproducible (sorted, fixed owner and mtime); the
# wheel is built once per deploykit source (its id, a hash of that source) and kept in OUT_DIR.
set -o errexit -o pipefail -o nounset
src=$1 wheelhouse=$2 out=$3 version=${4:-} python=${5:-python3}
cd "$src"
[ -f app/manage.py ] || { echo "ERROR: $src/app/manage.py not found (app_source_dir)" >&2; exit 1; }
[ -f deploykit/pyproject.toml ] && [ -f deploykit/src/deploykit/__init__.py ] || {
    echo "ERROR: $src/deploykit (pyproject.toml, src/deploykit) not found (app_source_dir)" >&2; exit 1; }
lock=requirements/app.lock
lock_id=$(sha256sum "$lock" | cut -c1-16)
# compose/images/app/build-wheelhouse.sh leaves this stamp once every wheel of the lock is downloaded.
[ -f "$wheelhouse/.lock-$lock_id" ] || {
    echo "ERROR: $wheelhouse does not hold the wheels of $lock; run compose/images/app/build-wheelhouse.sh first" >&2; exit 1; }
mapfile -t files < <(find app -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name 'db.sqlite3*' \
    ! -path 'app/staticfiles/*' ! -path 'app/media/*' | LC_ALL=C sort)
files+=("$lock")
# deploykit's source as its wheel is built from it (-L: its LICENSE is a link to the repository's).
mapfile -t dk_files < <(find -L deploykit -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' \
    ! -path 'deploykit/build/*' ! -path 'deploykit/dist/*' | LC_ALL=C sort)
dk_id=$(sha256sum "${dk_files[@]}" | sha256sum | cut -c1-16)
[ -n "$version" ] || version=r$(sha256sum "${files[@]}" "${dk_files[@]}" | sha256sum | cut -c1-12)
[[ $version =~ ^[A-Za-z0-9._-]+$ ]] || { echo "ERROR: app_version '$version' may hold only [A-Za-z0-9._-]" >&2; exit 1; }
mkdir -p "$out"
tar_opts=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner)
# The wheel, built from a copy (links resolved, no build directories left in the source tree).
dk_dir=$out/deploykit-$dk_id
if ! compgen -G "$dk_dir/wheels/deploykit-*.whl" >/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # The start scripts (deploykit/bin, the wheel's scripts) stay executable.
    for f in "${dk_files[@]}"; do install -D -m "$([[ $f == deploykit/bin/* ]] && echo 0755 || echo 0644)" "$f" "$tmp/$f"; done
    "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$tmp/wheels" "$tmp/deploykit" >&2
    rm -rf "$dk_dir.tmp" && mkdir "$dk_dir.tmp" && mv "$tmp/wheels" "$dk_dir.tmp/wheels"
    rm -rf "$dk_dir" && mv "$dk_dir.tmp" "$dk_dir"
fi
release=$out/release-$version.tar.gz
if [ ! -f "$release" ]; then
    tar "${tar_opts[@]}" -czf "$release.tmp" "${files[@]}" -C "$dk_dir" wheels && mv "$release.tmp" "$release"
fi
wheels=$out/wheelhouse-$lock_id.tar
if [ ! -f "$wheels" ]; then
    tar "${tar_opts[@]}" -C "$wheelhouse" --exclude='.lock-*' -cf "$wheels.tmp" . && mv "$wheels.tmp" "$wheels"
fi
printf '{"version": "%s", "release_archive": "%s", "wheelhouse_archive": "%s", "wheelhouse_id": "%s", "deploykit_id": "%s"}\n' \
    "$version" "$release" "$wheels" "$lock_id" "$dk_id"
