#!/usr/bin/env bash
# Download every wheel of a requirements file with the TARGET interpreter (Debian 13's Python 3.13 by
# default), so offline image builds and VM deploys install exactly that set with `pip install --no-index`.
# Resolving with the host's Python would pick other markers (see shared pitfalls), so this runs inside
# a throwaway container of the local Python image, trusting the host's CA bundle only for the download.
#   REQUIREMENTS  the requirements file (default requirements/app.lock, the reference project's lock;
#                 compose/images/app/build.sh passes a project's, written by scripts/project/resolve-deps)
#   WHEELHOUSE    output directory (default build/wheelhouse)
#   (both relative to the repository root, or absolute: the Ansible role passes a release's)
#   PY_IMAGE      the interpreter's image, used as it is (default: the local Python image of BASE_PYTHON,
#                 3.13 unless set, built first by compose/images/python/build.sh when missing or stale)
# The reference lock is wheels only. A project's package without a wheel for the image's Python comes
# as its sdist, with the build requirements its pyproject.toml names (setuptools and wheel when it names
# none): the image's builder stage builds it, with compilers there only (compose/images/app/Dockerfile).
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
WHEELHOUSE=${WHEELHOUSE:-build/wheelhouse}
LOCK=${REQUIREMENTS:-requirements/app.lock}
STAMP="$WHEELHOUSE/.lock-$(sha256sum "$LOCK" | cut -c1-16)"
[ -f "$STAMP" ] && exit 0
if [ -z "${PY_IMAGE:-}" ]; then
  compose/images/python/build.sh
  PY_IMAGE=$(compose/images/python/build.sh --name)
fi
CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
binary=--only-binary=:all:
[ "$LOCK" = requirements/app.lock ] || binary=--prefer-binary
hashes=""
grep -q -- '--hash=' "$LOCK" && hashes=--require-hashes
mkdir -p "$WHEELHOUSE"
download() { # download TOOLS: TOOLS=1 runs as root with compilers and libpq's headers in the container
  local user=(--user "$(id -u):$(id -g)")
  [ "$1" = 1 ] && user=()
  docker run --rm "${user[@]}" -e HOME=/tmp -e TOOLS="$1" -e OWNER="$(id -u):$(id -g)" \
    -v "$(realpath "$WHEELHOUSE"):/wh" -v "$(realpath "$LOCK"):/req/requirements.txt:ro" -v "$CA:/ca.crt:ro" -e PIP_CERT=/ca.crt \
    -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e BINARY="$binary" -e HASHES="$hashes" "$PY_IMAGE" sh -c '
    set -e
    if [ "$TOOLS" = 1 ]; then
      apt-get update -qq && apt-get install -y -qq --no-install-recommends build-essential libpq-dev \
        pkg-config python3-dev >/dev/null
    fi
    python3 -m venv /tmp/v
    status=0
    /tmp/v/bin/pip download --quiet $BINARY $HASHES -d /wh -r /req/requirements.txt || status=$?
    if [ "$status" = 0 ]; then
    # Build requirements of the sdists (pip download does not fetch them): from each pyproject.toml.
    /tmp/v/bin/python - <<"PY" >/tmp/build-reqs.txt
import glob, tarfile, tomllib, zipfile
reqs = set()
for sdist in glob.glob("/wh/*.tar.gz") + glob.glob("/wh/*.zip"):
    text = None
    if sdist.endswith(".zip"):
        with zipfile.ZipFile(sdist) as z:
            names = [n for n in z.namelist() if n.count("/") == 1 and n.endswith("/pyproject.toml")]
            text = z.read(names[0]).decode() if names else None
    else:
        with tarfile.open(sdist) as t:
            names = [m for m in t.getmembers() if m.name.count("/") == 1 and m.name.endswith("/pyproject.toml")]
            text = t.extractfile(names[0]).read().decode() if names else None
    build = tomllib.loads(text).get("build-system", {}) if text else {}
    reqs.update(build.get("requires", ["setuptools>=40.8.0", "wheel"]))
print("\n".join(sorted(reqs)))
PY
    if [ -s /tmp/build-reqs.txt ]; then
      /tmp/v/bin/pip download --quiet --only-binary=:all: -d /wh -r /tmp/build-reqs.txt || status=$?
    fi
    fi
    [ "$TOOLS" != 1 ] || chown -R "$OWNER" /wh
    exit $status'
}
echo "==> downloading the wheels of $LOCK for $PY_IMAGE's Python into $WHEELHOUSE"
if ! download 0; then
  # An sdist whose metadata needs a compiler or a library's headers (psycopg[c] runs pg_config): again
  # with them, in the throwaway container only (the image's builder stage installs them for itself).
  echo "==> again with build tools in the download container (a package builds from source)"
  download 1
fi
rm -f "$WHEELHOUSE"/.lock-*
touch "$STAMP"
