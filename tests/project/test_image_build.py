"""The app image built from a project other than the reference one, the way CI builds (offline: the
local Python image, a wheelhouse made with its interpreter, OFFLINE=1), through
compose/images/app/prepare.sh, which compose/scripts/build-images.sh uses.

- refusals before any build: no dependency file, several, a project that asks for another Python;
- examples/bookshop (uv.lock) really built: its packages import, collectstatic ran at the build step
  with its settings module, uid 10001, tini, root-owned byte-compiled code, no compiler and no pip in
  the runtime stage; the dependency file detected is uv.lock, exported with hashes;
- the same project's plain requirements variant (PROJECT_REQUIREMENTS=requirements/production.txt,
  unhashed, with a -r include) installs too;
- a project lacking one of deploykit's declared dependencies (gunicorn) is stopped by pip check,
  which names it.

Run: `make test-project-image` (in `make test`; needs Docker). PY_IMAGE names the base image to use
as it is (default: compose/images/python/build.sh makes blueprint/python:3.13-trixie);
PROJECT_TEST_IMAGE the image name (default project-test/bookshop); PROJECT_TEST_NO_CACHE=1 builds
without the layer cache. Opt-in: `make test-project-image-sdist` (psycopg[c]), `make
test-project-image-314` (BASE_PYTHON=3.14).

Measured 2026-12-06 on the 2-core machine, beside a CI run using Docker and both cores (load 4-6),
the whole file (refusals + both builds + checks), base image present:
  cold (no wheelhouse, --no-cache):                          105 s (uv.lock build 59 s, plain 43 s),
                                                              + 35 s for the missing-dependency build
                                                              (added later, measured alone, cold)
  warm (layers cached; wheelhouse downloaded again, as in
        a fresh clone):                                       24 s (the two builds 7 s and 5 s)
  psycopg[c] (opt-in), its wheelhouse and layers new:         82 s; 163 s with the builder's apt
                                                              layer new as well
  BASE_PYTHON=3.14 (opt-in): Debian testing's base 49 s (debootstrap, python3.14 3.14.8), then the
                             build 87 s (its wheelhouse and layers new)
"""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PREPARE = REPO_ROOT / "compose" / "images" / "app" / "prepare.sh"
DOCKERFILE = REPO_ROOT / "compose" / "images" / "app" / "Dockerfile"
BOOKSHOP = REPO_ROOT / "examples" / "bookshop"
IMAGE = os.environ.get("PROJECT_TEST_IMAGE", "project-test/bookshop:latest")
# The agreed interface of the settings helper: until deploykit.settings exists in this checkout the
# production module cannot import, and the build uses the bookshop's base settings instead.
HAS_APPLY = (REPO_ROOT / "deploykit" / "src" / "deploykit" / "settings.py").exists() or \
    (REPO_ROOT / "deploykit" / "src" / "deploykit" / "settings" / "__init__.py").exists()
SETTINGS = "bookshop.settings.production" if HAS_APPLY else "bookshop.settings.base"

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs Docker")


def env(**extra: str | None) -> dict:
    """This process's environment without the project settings, plus `extra` (None: left out)."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("PROJECT_DIR", "PROJECT_REQUIREMENTS", "DJANGO_SETTINGS_MODULE", "BASE_PYTHON", *extra)}
    return {**base, "ENV_FILE": os.devnull, **{k: v for k, v in extra.items() if v is not None}}


def prepare(project: Path, **extra: str | None) -> subprocess.CompletedProcess:
    return subprocess.run([str(PREPARE), "offline"], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=env(PROJECT_DIR=str(project), **extra), timeout=900)


def build(project: Path, tag: str, **extra: str | None) -> tuple[list[str], float]:
    began = time.monotonic()
    proc = prepare(project, **extra)
    assert proc.returncode == 0, proc.stderr
    context, *args = proc.stdout.splitlines()
    no_cache = ["--no-cache"] if os.environ.get("PROJECT_TEST_NO_CACHE") == "1" else []  # a cold build
    built = subprocess.run(["docker", "build", "-q", *no_cache, "-f", str(DOCKERFILE), "-t", tag, *args, context],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-6000:]
    return [proc.stderr, *args], time.monotonic() - began


def run(image: str, *cmd: str, entrypoint: str | None = None) -> subprocess.CompletedProcess:
    args = ["docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none"]
    if entrypoint is not None:
        args += ["--entrypoint", entrypoint]
    return subprocess.run([*args, image, *cmd], capture_output=True, text=True, timeout=120)


@pytest.fixture
def fake_project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "manage.py").write_text("import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop.settings')\n")
    return root


@pytest.mark.parametrize("files, expected", [
    ({}, ["no dependency file", "uv.lock, requirements.txt, poetry.lock"]),
    ({"requirements.txt": "django\n", "poetry.lock": ""},
     ["several dependency files", "requirements.txt, poetry.lock"]),
    ({"requirements.txt": "django\n", ".python-version": "3.14\n"},
     ["asks for Python 3.14", "base image has Python 3.13"]),
], ids=["none", "several", "another-python"])
def test_refused_before_any_build(fake_project, files, expected):
    for name, text in files.items():
        (fake_project / name).write_text(text)
    proc = prepare(fake_project, PY_IMAGE="unused:never-built")
    assert proc.returncode == 2
    assert proc.stderr.startswith("ERROR: ") and all(part in proc.stderr for part in expected), proc.stderr


def test_bookshop_image(tmp_path):
    notes, seconds = build(BOOKSHOP, IMAGE, DJANGO_SETTINGS_MODULE=SETTINGS)
    print(f"bookshop image built in {seconds:.0f} s (prepare + docker build)")
    assert "dependencies from" in notes[0] and "uv.lock (uv)" in notes[0]
    assert "--build-arg" in notes and "REQUIRE_HASHES=1" in notes and "PROJECT_DIR=project" in notes

    config = json.loads(subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, text=True,
                                       check=True).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["tini", "--"]
    assert f"DJANGO_SETTINGS_MODULE={SETTINGS}" in config["Env"]

    check = run(IMAGE, "python", "-c", "; ".join([
        "import os, django, celery, redis, psycopg, django_celery_beat, environ, whitenoise, deploykit, bookshop",
        "from bookshop.celery_app import app",
        "assert app.main == 'bookshop', app.main",
        "assert django.VERSION[:2] == (5, 2), django.VERSION",
        "print(os.getuid(), django.get_version(), celery.__version__)",
    ]))
    assert check.returncode == 0, check.stderr
    assert check.stdout.split()[0] == "10001"

    # collectstatic ran at the build step with the project's settings (admin's files are there).
    static = run(IMAGE, "sh", "-c", "ls /app/staticfiles/admin/css | head -3")
    assert static.returncode == 0 and static.stdout.strip(), static.stderr
    # Code root-owned and byte-compiled; the app user cannot write it.
    owner = run(IMAGE, "sh", "-c", "stat -c %U /app/manage.py /app/bookshop/shop/tasks.py; "
                                   "ls /app/bookshop/shop/__pycache__ | grep -c 'tasks.cpython'; "
                                   "touch /app/x 2>/dev/null && echo writable || echo read-only")
    assert owner.stdout.split() == ["root", "root", "1", "read-only"], owner.stdout + owner.stderr
    # The runtime stage has no compiler and no pip (nothing installs or builds at run time).
    tools = run(IMAGE, "sh", "-c", "for t in gcc cc c++ make; do command -v $t; done; "
                                   "python -m pip --version 2>/dev/null; true")
    assert tools.stdout.strip() == "", tools.stdout
    # The process manager is tini; the settings package is the project's, not the reference one.
    assert run(IMAGE, "sh", "-c", "command -v tini").stdout.strip()
    assert run(IMAGE, "sh", "-c", "test ! -e /app/config").returncode == 0


def test_bookshop_plain_requirements_variant():
    """The same project from its unhashed requirements (named in PROJECT_REQUIREMENTS, -r include)."""
    tag = IMAGE.rsplit(":", 1)[0] + ":plain"
    notes, seconds = build(BOOKSHOP, tag, DJANGO_SETTINGS_MODULE=SETTINGS,
                           PROJECT_REQUIREMENTS="requirements/production.txt")
    print(f"bookshop plain-requirements image built in {seconds:.0f} s")
    assert "production.txt (requirements)" in notes[0] and "REQUIRE_HASHES=0" in notes
    check = run(tag, "python", "-c", "import django, celery, redis, psycopg, deploykit, bookshop")
    assert check.returncode == 0, check.stderr


def test_missing_deploykit_dependency_stops_the_build(tmp_path):
    """The project's dependencies win; one that lacks what deploykit declares (gunicorn here) stops the
    build in the depcheck stage, and pip check names it."""
    project = tmp_path / "bookshop-nogunicorn"
    shutil.copytree(BOOKSHOP, project, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3*"))
    production = project / "requirements" / "production.txt"
    production.write_text(production.read_text().replace("gunicorn>=23\n", ""))
    proc = prepare(project, DJANGO_SETTINGS_MODULE=SETTINGS, PROJECT_REQUIREMENTS="requirements/production.txt")
    assert proc.returncode == 0, proc.stderr
    context, *args = proc.stdout.splitlines()
    built = subprocess.run(["docker", "build", "--force-rm", "-f", str(DOCKERFILE), "-t", "project-test/never:built", *args, context],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert built.returncode != 0
    assert "deploykit" in built.stdout and "requires gunicorn, which is not installed" in built.stdout, built.stdout[-3000:]
    assert "add the missing distribution to the project's dependency file" in built.stdout + built.stderr


@pytest.mark.skipif(os.environ.get("PROJECT_TEST_SDIST") != "1",
                    reason="opt-in: make test-project-image-sdist (compilers in the download container and the builder)")
def test_sdist_is_built_in_the_builder_only(tmp_path):
    """psycopg[c] has no wheel: its sdist comes into the wheelhouse (pg_config needed for its metadata,
    so the download container gets build tools), the builder stage compiles it, and the runtime stage
    gets libpq5 but no compiler."""
    project = tmp_path / "bookshop-c"
    shutil.copytree(BOOKSHOP, project, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3*"))
    production = project / "requirements" / "production.txt"
    production.write_text(production.read_text().replace("psycopg[binary]", "psycopg[c]"))
    tag = IMAGE.rsplit(":", 1)[0] + ":psycopg-c"
    _, seconds = build(project, tag, DJANGO_SETTINGS_MODULE=SETTINGS, PROJECT_REQUIREMENTS="requirements/production.txt")
    print(f"bookshop with psycopg[c] built in {seconds:.0f} s")
    check = run(tag, "sh", "-c", "python -c 'import psycopg; print(psycopg.pq.__impl__)'; "
                                 "grep -x libpq5 /opt/venv/.runtime-packages; "
                                 "for t in gcc cc make; do command -v $t; done; true")
    assert check.stdout.split() == ["c", "libpq5"], check.stdout + check.stderr


@pytest.mark.skipif(os.environ.get("BASE_PYTHON_TEST") != "3.14",
                    reason="opt-in: make test-project-image-314 (builds Debian testing's base first)")
def test_bookshop_image_on_python_314(tmp_path):
    """BASE_PYTHON=3.14: the bookshop, pinned to 3.14 in a copy, on Debian testing's Python. The same
    uv.lock serves both (it is universal)."""
    project = tmp_path / "bookshop314"  # its own build context and wheelhouse
    shutil.copytree(BOOKSHOP, project, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3*"))
    (project / ".python-version").write_text("3.14\n")
    tag = IMAGE.rsplit(":", 1)[0] + ":py314"
    # PY_IMAGE (the 3.13 base) must not reach this build: PY_IMAGE_314 may name a 3.14 one instead.
    _, seconds = build(project, tag, BASE_PYTHON="3.14", DJANGO_SETTINGS_MODULE=SETTINGS,
                       PY_IMAGE=os.environ.get("PY_IMAGE_314"))
    print(f"bookshop image on Python 3.14 built in {seconds:.0f} s")
    check = run(tag, "python", "-c", "import sys, django, celery, psycopg, deploykit, bookshop; "
                                     "print('%d.%d' % sys.version_info[:2])")
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "3.14"
