#!/usr/bin/env bash
# Runs on the control machine: pack one release of the app (app/ and the source of deploykit/, the package
# it uses, deploykit/src) and the wheelhouse for the hosts.
#   build-release.sh SOURCE_DIR WHEELHOUSE_DIR OUT_DIR [VERSION]
# Prints one JSON object: version, release archive, wheelhouse archive and its id.
# The release id defaults to a hash of the shipped files, so the same code is the same release and a
# re-run changes nothing on the hosts. Archives are reproducible (sorted, fixed owner and mtime).
set -o errexit -o pipefail -o nounset
src=$1 wheelhouse=$2 out=$3 version=${4:-}
cd "$src"
[ -f app/manage.py ] || { echo "ERROR: $src/app/manage.py not found (app_source_dir)" >&2; exit 1; }
[ -f deploykit/src/deploykit/__init__.py ] || {
    echo "ERROR: $src/deploykit/src/deploykit not found (app_source_dir)" >&2; exit 1; }
lock=requirements/app.lock
lock_id=$(sha256sum "$lock" | cut -c1-16)
# compose/images/app/build-wheelhouse.sh leaves this stamp once every wheel of the lock is downloaded.
[ -f "$wheelhouse/.lock-$lock_id" ] || {
    echo "ERROR: $wheelhouse does not hold the wheels of $lock; run compose/images/app/build-wheelhouse.sh first" >&2; exit 1; }
mapfile -t files < <(find app deploykit/src -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name 'db.sqlite3*' \
    ! -path 'app/staticfiles/*' ! -path 'app/media/*' ! -path '*.egg-info/*' | LC_ALL=C sort)
files+=("$lock")
[ -n "$version" ] || version=r$(sha256sum "${files[@]}" | sha256sum | cut -c1-12)
[[ $version =~ ^[A-Za-z0-9._-]+$ ]] || { echo "ERROR: app_version '$version' may hold only [A-Za-z0-9._-]" >&2; exit 1; }
mkdir -p "$out"
tar_opts=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner)
release=$out/release-$version.tar.gz
if [ ! -f "$release" ]; then
    tar "${tar_opts[@]}" -czf "$release.tmp" "${files[@]}" && mv "$release.tmp" "$release"
fi
wheels=$out/wheelhouse-$lock_id.tar
if [ ! -f "$wheels" ]; then
    tar "${tar_opts[@]}" -C "$wheelhouse" --exclude='.lock-*' -cf "$wheels.tmp" . && mv "$wheels.tmp" "$wheels"
fi
printf '{"version": "%s", "release_archive": "%s", "wheelhouse_archive": "%s", "wheelhouse_id": "%s"}\n' \
    "$version" "$release" "$wheels" "$lock_id"
