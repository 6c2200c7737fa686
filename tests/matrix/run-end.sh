#!/usr/bin/env bash
# One end of deploykit's supported range (`make test-matrix`): a virtualenv with deploykit's wheel and the
# lowest (lowest-direct) or newest (highest) Django, Celery and kombu its metadata allows, then the
# focused suite against real Redis and PostgreSQL. On the host for Python 3.11, in the Debian testing
# container for Python 3.14 (tests/matrix/in-container.sh runs this script there).
#   MATRIX_PYTHON      the interpreter (python3.11, python3.14)
#   MATRIX_RESOLUTION  lowest-direct | highest (uv's --resolution, applied to Django, celery and kombu)
#   MATRIX_WHEEL       deploykit's wheel (`make matrix-wheel`)
#   MATRIX_DIR         where the virtualenv lives (kept: remade when an input below changes)
#   MATRIX_OVERRIDE_DJANGO  yes: deploykit's own Django range overrides those of its dependencies
#                      (django-celery-beat 2.9.0, the newest, declares Django <6.1: without this, the
#                      newest end would be Django 6.0, not the newest release deploykit claims)
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
: "${MATRIX_PYTHON:?}" "${MATRIX_RESOLUTION:?}" "${MATRIX_WHEEL:?}" "${MATRIX_DIR:?}"
UV=${UV:-uv}
venv=$MATRIX_DIR/venv-$MATRIX_RESOLUTION
override=()
if [ "${MATRIX_OVERRIDE_DJANGO:-}" = yes ]; then
  "$MATRIX_PYTHON" -c 'import sys, tomllib; print(*(d for d in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
                       if d.lower().startswith("django>")))' deploykit/pyproject.toml >"$MATRIX_DIR/override-django.txt"
  override=(--override "$MATRIX_DIR/override-django.txt")
fi
inputs=$( { "$MATRIX_PYTHON" -VV; echo "$MATRIX_RESOLUTION ${override[*]}"; cat "$0" tests/matrix/tools.txt deploykit/pyproject.toml; } \
  | sha256sum | cut -c1-16)
export UV_NATIVE_TLS=1 UV_PYTHON_DOWNLOADS=never
if [ ! -f "$venv/.inputs-$inputs" ]; then
  echo "==> $venv: deploykit[s3,lint] with the $MATRIX_RESOLUTION Django, celery and kombu on $("$MATRIX_PYTHON" -V)"
  rm -rf "$venv"
  "$UV" venv --quiet --python "$MATRIX_PYTHON" "$venv"
  # Django, celery and kombu named directly: lowest-direct takes the lower bound deploykit declares for
  # each, highest the newest release it allows; everything else resolves to its newest either way.
  "$UV" pip install --quiet --python "$venv/bin/python" --resolution "$MATRIX_RESOLUTION" "${override[@]}" \
    "deploykit[s3,lint] @ file://$(realpath "$MATRIX_WHEEL")" Django celery kombu -r tests/matrix/tools.txt
  touch "$venv/.inputs-$inputs"
else  # the same environment: only deploykit's wheel is new
  "$UV" pip install --quiet --python "$venv/bin/python" --no-deps --reinstall-package deploykit \
    "deploykit @ file://$(realpath "$MATRIX_WHEEL")"
fi
# --noconftest: tests/app's deploykit tests run without the reference project's conftest (which loads
# app/'s settings and dependencies); matrix_fixtures provides the real services instead. The one test
# that wants deploykit installed from this checkout (editable) is left out: here it is the wheel.
PYTHONPATH=tests/matrix:tests/app "$venv/bin/python" -m pytest -p no:cacheprovider --noconftest -p matrix_fixtures \
  tests/matrix tests/app/test_deploykit_versions.py tests/app/test_deploykit_metadata.py \
  tests/app/test_deploykit_settings.py \
  --deselect tests/app/test_deploykit_metadata.py::test_deploykit_is_installed_from_this_checkout ${PYTEST_ARGS:-}
