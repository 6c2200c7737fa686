#!/usr/bin/env bash
# Runs on the control machine: pack one release of the project (its code under app/, its one requirements
# file, and the wheel of deploykit/ under wheels/) and the wheelhouse for the hosts.
#   build-release.sh SOURCE_DIR PROJECT_DIR PROJECT_REQUIREMENTS WHEELHOUSE_DIR OUT_DIR [VERSION] [PYTHON]
# SOURCE_DIR holds deploykit/ (and, for the reference project, app/ and requirements/app.lock).
# PROJECT_DIR is the Django project (manage.py at its root). The reference project (SOURCE_DIR/app, no
# PROJECT_REQUIREMENTS) installs requirements/app.lock from WHEELHOUSE_DIR, which the caller fills
# (compose/images/app/build-wheelhouse.sh). Any other project's dependencies are found as the image build
# finds them (scripts/project/resolve-deps: uv.lock, requirements.txt or poetry.lock, or the file
# PROJECT_REQUIREMENTS names), for the hosts' Python (Debian 13's 3.13), and downloaded here into
# OUT_DIR/project-<name>/wheelhouse. The hosts have no compilers: a package that comes only as source is
# refused, naming it.
# PYTHON (default python3, the control machine's venv: packaging, uv, pip) runs resolve-deps and builds
# deploykit's wheel (its build backend, setuptools, from the index or pip's cache).
# Prints one JSON object: version, release archive, wheelhouse archive and its id, deploykit's id,
# whether the requirements carry hashes (the hosts then install with --require-hashes) and the project's
# default settings module (scripts/project/settings-module).
# The release id defaults to a hash of what is shipped, so the same code is the same release and a re-run
# changes nothing on the hosts. Archives are reproducible (sorted, fixed owner and mtime); the wheel is
# built once per deploykit source (its id, a hash of that source) and kept in OUT_DIR.
set -o errexit -o pipefail -o nounset
src=$1 project_dir=$2 requirements=$3 wheelhouse=$4 out=$5 version=${6:-} python=${7:-python3}
blueprint=$(cd "$(dirname "$0")/../../../.." && pwd -P)
refuse() { echo "ERROR: $*" >&2; exit 1; }
src=$(cd "$src" && pwd -P)
[ -f "$src/deploykit/pyproject.toml" ] && [ -f "$src/deploykit/src/deploykit/__init__.py" ] ||
    refuse "$src/deploykit (pyproject.toml, src/deploykit) not found (app_source_dir)"
[ -d "$project_dir" ] || refuse "app_project_dir $project_dir is not a directory"
project=$(cd "$project_dir" && pwd -P)
[ -f "$project/manage.py" ] || refuse "app_project_dir $project_dir has no manage.py (the hosts run the project from it)"
mkdir -p "$out" && out=$(cd "$out" && pwd -P)
tar_opts=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner)
tmp="" stage=""
trap 'rm -rf ${tmp:+"$tmp"} ${stage:+"$stage"}' EXIT

# ---- the project's requirements and their wheelhouse ----
if [ "$project" = "$src/app" ] && [ -z "$requirements" ]; then
    lock=$src/requirements/app.lock hashed=1
else
    name=$(basename "$project" | tr -c 'A-Za-z0-9_.\n-' '-')
    wheelhouse=$out/project-$name/wheelhouse lock=$out/project-$name/requirements.txt
    mkdir -p "$wheelhouse"
    resolve=("$project" --out "$lock" --python 3.13)
    [ -n "$requirements" ] && resolve+=(--requirements "$requirements")
    summary=$(PATH="$(dirname "$python"):$PATH" "$python" "$blueprint/scripts/project/resolve-deps" "${resolve[@]}") || exit 1
    hashed=$(sed -n 's/^hashed=//p' <<<"$summary")
    REQUIREMENTS=$lock WHEELHOUSE=$wheelhouse "$blueprint/compose/images/app/build-wheelhouse.sh" >&2
    mapfile -t sources < <(find "$wheelhouse" -maxdepth 1 \( -name '*.tar.gz' -o -name '*.zip' \) -printf '%f\n' | sort)
    [ "${#sources[@]}" = 0 ] || refuse "no wheel for the hosts' Python 3.13, only source: ${sources[*]}." \
        "The hosts have no compilers: depend on a variant with wheels (e.g. psycopg[binary] instead of psycopg[c])."
fi
lock_id=$(sha256sum "$lock" | cut -c1-16)
# compose/images/app/build-wheelhouse.sh leaves this stamp once every wheel of the lock is downloaded.
[ -f "$wheelhouse/.lock-$lock_id" ] ||
    refuse "$wheelhouse does not hold the wheels of $lock; run compose/images/app/build-wheelhouse.sh first"

# ---- deploykit's wheel, built from a copy (links resolved, no build directories left in the source tree) ----
mapfile -t dk_files < <(cd "$src" && find -L deploykit -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
    ! -path '*.egg-info/*' ! -path 'deploykit/build/*' ! -path 'deploykit/dist/*' | LC_ALL=C sort)
dk_id=$(cd "$src" && sha256sum "${dk_files[@]}" | sha256sum | cut -c1-16)
dk_dir=$out/deploykit-$dk_id
if ! compgen -G "$dk_dir/wheels/deploykit-*.whl" >/dev/null; then
    tmp=$(mktemp -d)
    # The start scripts (deploykit/bin, the wheel's scripts) stay executable.
    for f in "${dk_files[@]}"; do
        install -D -m "$([[ $f == deploykit/bin/* ]] && echo 0755 || echo 0644)" "$src/$f" "$tmp/$f"
    done
    "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$tmp/wheels" "$tmp/deploykit" >&2
    rm -rf "$dk_dir.tmp" && mkdir "$dk_dir.tmp" && mv "$tmp/wheels" "$dk_dir.tmp/wheels"
    rm -rf "$dk_dir" && mv "$dk_dir.tmp" "$dk_dir"
fi

# ---- the release: the project's code as app/, requirements.txt, wheels/ ----
# What is not code (scripts/project/not-code.exclude) stays out, as it does from the image.
stage=$out/stage-$$ && rm -rf "$stage" && mkdir -p "$stage/app"
tar -C "$project" -c --exclude-vcs --exclude-from="$blueprint/scripts/project/not-code.exclude" . | tar -C "$stage/app" -x
cp "$lock" "$stage/requirements.txt"
cp -r "$dk_dir/wheels" "$stage/wheels"
# Named by the code, the requirements and deploykit's source (not its wheel's bytes, which carry build times).
[ -n "$version" ] || version=r$( { tar "${tar_opts[@]}" -C "$stage" -cf - app requirements.txt; echo "$dk_id"; } | sha256sum | cut -c1-12)
[[ $version =~ ^[A-Za-z0-9._-]+$ ]] || refuse "app_version '$version' may hold only [A-Za-z0-9._-]"
release=$out/release-$version.tar.gz
if [ ! -f "$release" ]; then
    tar "${tar_opts[@]}" -C "$stage" -czf "$release.tmp" app requirements.txt wheels && mv "$release.tmp" "$release"
fi
wheels=$out/wheelhouse-$lock_id.tar
if [ ! -f "$wheels" ]; then
    tar "${tar_opts[@]}" -C "$wheelhouse" --exclude='.lock-*' -cf "$wheels.tmp" . && mv "$wheels.tmp" "$wheels"
fi
printf '{"version": "%s", "release_archive": "%s", "wheelhouse_archive": "%s", "wheelhouse_id": "%s", "deploykit_id": "%s", "hashed": %s, "settings_module": "%s"}\n' \
    "$version" "$release" "$wheels" "$lock_id" "$dk_id" "$([ "$hashed" = 1 ] && echo true || echo false)" \
    "$("$blueprint/scripts/project/settings-module" "$project")"
