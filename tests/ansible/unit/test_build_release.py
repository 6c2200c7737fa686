"""ansible/roles/app/files/build-release.sh on the control machine: the release of the reference project
and of another one (its code as app/, one requirements.txt, deploykit's wheel), named by its content, and
the refusals. No fleet: the wheelhouse of another project is laid out as build-wheelhouse.sh leaves it."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "ansible" / "roles" / "app" / "files" / "build-release.sh"
PYTHON = str(Path(sys.executable))


def build(src: Path, project: Path | str, out: Path, wheelhouse: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), str(src), str(project), "", str(wheelhouse or out / "no-wheelhouse"),
                           str(out), "", PYTHON], capture_output=True, text=True, timeout=300)


def members(archive: str) -> set[str]:
    with tarfile.open(archive) as tar:
        return set(tar.getnames())


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The parts of the blueprint a release is built from (as tests/ansible/run.sh snapshots them)."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "staticfiles", "media", "db.sqlite3*", "build")
    for part in ("app", "deploykit"):
        shutil.copytree(ROOT / part, src / part, ignore=ignore, symlinks=False)
    (src / "requirements").mkdir()
    shutil.copy(ROOT / "requirements" / "app.lock", src / "requirements" / "app.lock")
    return src


@pytest.fixture(scope="module")
def reference_wheelhouse(tmp_path_factory) -> Path:
    """The reference lock's wheelhouse as build-wheelhouse.sh leaves it (its stamp; no wheel is read here)."""
    wheelhouse = tmp_path_factory.mktemp("wheelhouse")
    (wheelhouse / f".lock-{hashlib.sha256((ROOT / 'requirements' / 'app.lock').read_bytes()).hexdigest()[:16]}").touch()
    return wheelhouse


def test_a_reference_release_needs_its_wheelhouse(source, tmp_path):
    result = build(source, source / "app", tmp_path / "out")
    assert result.returncode != 0 and "run compose/images/app/build-wheelhouse.sh first" in result.stderr


def test_the_reference_release_is_named_by_its_content(source, reference_wheelhouse, tmp_path):
    first = build(source, source / "app", tmp_path / "out", reference_wheelhouse)
    assert first.returncode == 0, first.stderr
    meta = json.loads(first.stdout)
    assert meta["hashed"] is True and meta["settings_module"] == "config.settings"
    names = members(meta["release_archive"])
    assert {"app/manage.py", "requirements.txt"} <= names and any(n.startswith("wheels/deploykit-") for n in names)
    assert not any("__pycache__" in n for n in names)
    again = json.loads(build(source, source / "app", tmp_path / "out2", reference_wheelhouse).stdout)
    assert again["version"] == meta["version"]
    (source / "app" / "RELEASE-NOTE").write_text("changed\n")
    try:
        changed = json.loads(build(source, source / "app", tmp_path / "out3", reference_wheelhouse).stdout)
    finally:
        (source / "app" / "RELEASE-NOTE").unlink()
    assert changed["version"] != meta["version"]


def project_with(tmp_path: Path, requirements: str) -> Path:
    project = tmp_path / "shop"
    (project / "shop").mkdir(parents=True)
    (project / "manage.py").write_text('import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings.prod")\n')
    (project / "requirements.txt").write_text(requirements)
    (project / ".env").write_text("SECRET=never-shipped\n")
    return project


def lay_out_wheelhouse(out: Path, project: Path, files: list[str]) -> None:
    """What build-wheelhouse.sh leaves: the files and the stamp of the resolved requirements."""
    lock = out / f"project-{project.name}" / "requirements.txt"
    lock.parent.mkdir(parents=True)
    subprocess.run([PYTHON, str(ROOT / "scripts/project/resolve-deps"), str(project), "--out", str(lock),
                    "--python", "3.13"], check=True, capture_output=True)
    wheelhouse = lock.parent / "wheelhouse"
    wheelhouse.mkdir()
    for name in files:
        (wheelhouse / name).write_bytes(b"")
    (wheelhouse / f".lock-{hashlib.sha256(lock.read_bytes()).hexdigest()[:16]}").touch()


def test_another_project_ships_its_code_as_app_and_its_requirements(source, tmp_path):
    project = project_with(tmp_path, "six==1.17.0\n")
    lay_out_wheelhouse(tmp_path / "out", project, ["six-1.17.0-py2.py3-none-any.whl"])
    result = build(source, project, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout)
    assert meta["hashed"] is False and meta["settings_module"] == "shop.settings.prod"
    names = members(meta["release_archive"])
    assert {"app/manage.py", "app/requirements.txt", "requirements.txt"} <= names
    assert "app/.env" not in names, "a project's .env must never be shipped"


def test_a_package_without_a_wheel_is_refused_naming_it(source, tmp_path):
    project = project_with(tmp_path, "psycopg[c]==3.2.9\n")
    lay_out_wheelhouse(tmp_path / "out", project, ["psycopg-3.2.9-py3-none-any.whl", "psycopg_c-3.2.9.tar.gz"])
    result = build(source, project, tmp_path / "out")
    assert result.returncode != 0
    assert "only source: psycopg_c-3.2.9.tar.gz" in result.stderr and "psycopg[binary]" in result.stderr


def test_a_folder_without_manage_py_is_refused(source, tmp_path):
    result = build(source, tmp_path, tmp_path / "out")
    assert result.returncode != 0 and "has no manage.py" in result.stderr
