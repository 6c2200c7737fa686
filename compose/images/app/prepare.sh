#!/usr/bin/env bash
# Prepare the app image's build for the configured project (docs/your-project.md) and print what
# `docker build -f compose/images/app/Dockerfile` needs: the build context on the first line, then one
# docker build argument a line. compose/scripts/build-images.sh builds with them; so can anyone:
#   compose/images/app/prepare.sh offline >args && mapfile -t a <args &&
#   docker build -f compose/images/app/Dockerfile -t NAME "${a[@]:1}" "${a[0]}"
#
# Usage: compose/images/app/prepare.sh online|offline
# Settings, from the environment, else from the env file ENV_FILE (default .env), else the default:
#   PROJECT_DIR             the project's folder (default app, the reference project); anywhere on disk
#   PROJECT_REQUIREMENTS    its dependency file, when detection is not wanted (default: detected:
#                           exactly one of uv.lock, requirements.txt, poetry.lock; for app:
#                           requirements/app.lock)
#   DJANGO_SETTINGS_MODULE  the image's settings module (default: what the project's manage.py sets
#                           with os.environ.setdefault, else config.settings)
#   BASE_PYTHON             3.13 (default: Debian 13 / python:3.13-slim-trixie) or 3.14 (Debian testing /
#                           python:3.14-slim-trixie); a project whose .python-version or requires-python
#                           excludes it is refused, naming both
#   PY_IMAGE                offline: the base image, used as it is (default: the local Python image of
#                           BASE_PYTHON, built when missing by compose/images/python/build.sh)
# The reference project builds from the repository root, as always. Another project builds from its own
# context, build/projects/<name>/py<X.Y>/context: the project's files (without .git, virtualenvs, .env, caches,
# collected static files, media or a SQLite database), deploykit, the one requirements file made by
# scripts/project/resolve-deps and, offline, the wheelhouse made from it.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
MODE=${1:?usage: prepare.sh online|offline}
ENV_FILE=${ENV_FILE:-.env}
setting() { # NAME DEFAULT: the environment wins, then the env file, then the default
  local v=""
  [ -f "$ENV_FILE" ] && v=$(sed -n "s/^$1=//p" "$ENV_FILE" | tail -n1)
  printf '%s' "${!1:-${v:-$2}}"
}
PROJECT_DIR=$(setting PROJECT_DIR app)
PROJECT_REQUIREMENTS=$(setting PROJECT_REQUIREMENTS "")
BASE_PYTHON=$(setting BASE_PYTHON 3.13)
case "$BASE_PYTHON" in
  3.13 | 3.14) ;;
  *) echo "ERROR: BASE_PYTHON must be 3.13 or 3.14 (got '$BASE_PYTHON')" >&2; exit 2 ;;
esac
[ -d "$PROJECT_DIR" ] || { echo "ERROR: PROJECT_DIR $PROJECT_DIR is not a directory" >&2; exit 2; }
project=$(cd "$PROJECT_DIR" && pwd -P)
[ -f "$project/manage.py" ] || { echo "ERROR: PROJECT_DIR $PROJECT_DIR has no manage.py (the image runs the project from it)" >&2; exit 2; }

if [ "$MODE" = offline ]; then
  if [ -n "${PY_IMAGE:-}" ]; then
    base=$PY_IMAGE
  else
    BASE_PYTHON=$BASE_PYTHON compose/images/python/build.sh >&2
    base=$(BASE_PYTHON=$BASE_PYTHON compose/images/python/build.sh --name)
  fi
else
  base=python:$BASE_PYTHON-slim-trixie
fi

settings=$(setting DJANGO_SETTINGS_MODULE "$(scripts/project/settings-module "$project")")

args=(--build-arg "BASE_IMAGE=$base" --build-arg "DJANGO_SETTINGS_MODULE=$settings")
[ "$MODE" = offline ] && args+=(--build-arg OFFLINE=1)

if [ "$project" = "$PWD/app" ] && { [ -z "$PROJECT_REQUIREMENTS" ] || [ "$PROJECT_REQUIREMENTS" -ef requirements/app.lock ]; }; then
  # The reference project: the repository root is the context, requirements/app.lock the lock.
  if [ "$MODE" = offline ]; then PY_IMAGE=$base compose/images/app/build-wheelhouse.sh >&2; fi
  printf '%s\n' . "${args[@]}"
  exit 0
fi

py=.venv/bin/python
[ -x "$py" ] || scripts/setup/ensure-venv.sh >&2
name=$(basename "$project" | tr -c 'A-Za-z0-9_.\n-' '-')
work=build/projects/$name/py$BASE_PYTHON  # a wheelhouse per Python: wheels differ
ctx=$work/context
mkdir -p "$ctx"
resolve=("$project" --out "$ctx/requirements.txt" --python "$BASE_PYTHON")
[ -n "$PROJECT_REQUIREMENTS" ] && resolve+=(--requirements "$PROJECT_REQUIREMENTS")
summary=$("$py" scripts/project/resolve-deps "${resolve[@]}") || exit 2
echo "==> $PROJECT_DIR: dependencies from $(sed -n 's/^source=//p' <<<"$summary") ($(sed -n 's/^kind=//p' <<<"$summary")); Python: $(sed -n 's/^python=//p' <<<"$summary")" >&2
hashed=$(sed -n 's/^hashed=//p' <<<"$summary")

# Fresh copies of the code (the layer cache compares contents, not times); the wheelhouse stays. What is
# not code (scripts/project/not-code.exclude) stays out, as it does from a VM release.
rm -rf "$ctx/project" "$ctx/deploykit"
mkdir -p "$ctx/project" "$ctx/deploykit"
tar -C "$project" -c --exclude-vcs --exclude-from=scripts/project/not-code.exclude . | tar -C "$ctx/project" -x
tar -c --exclude='*.egg-info' --exclude=__pycache__ --exclude='*.pyc' \
  deploykit/src deploykit/bin deploykit/pyproject.toml deploykit/README.md deploykit/LICENSE | tar -C "$ctx" -x
cp LICENSE "$ctx/LICENSE"
if [ "$MODE" = offline ]; then
  REQUIREMENTS=$ctx/requirements.txt WHEELHOUSE=$ctx/wheelhouse PY_IMAGE=$base compose/images/app/build-wheelhouse.sh >&2
fi
args+=(--build-arg PROJECT_DIR=project --build-arg REQUIREMENTS=requirements.txt
       --build-arg 'WHEELHOUSE=wheelhous[e]' --build-arg "REQUIRE_HASHES=$hashed")
printf '%s\n' "$ctx" "${args[@]}"
