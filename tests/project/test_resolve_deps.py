"""scripts/project/resolve-deps on real files in throw-away project folders: which dependency file is
used (uv.lock, requirements.txt, poetry.lock or the one named), what comes out for the image's pip
(uv export run for real, -r includes flattened, poetry.lock converted with its hashes), the refusals
(none, several, unsupported lines) and the Python version check. Host-side, a few seconds."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "project" / "resolve-deps"
BOOKSHOP = REPO_ROOT / "examples" / "bookshop"
HASH_A = "sha256:" + "a" * 64
HASH_B = "sha256:" + "b" * 64


def run(project: Path, *args: str, out: Path | None = None) -> subprocess.CompletedProcess:
    out = out or project.parent / "out" / "requirements.txt"
    return subprocess.run([sys.executable, str(SCRIPT), str(project), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120)


def summary(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines())


def write(root: Path, files: dict) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    return root


# ---- detection -------------------------------------------------------------------------------------

def test_uv_lock_is_exported_with_hashes_and_no_dev_group(tmp_path):
    out = tmp_path / "req.txt"
    info = summary(run(BOOKSHOP, "--python", "3.13", out=out))
    assert info["kind"] == "uv" and info["hashed"] == "1"
    assert info["source"].endswith("uv.lock")
    text = out.read_text()
    assert "django==5.2." in text and "celery==" in text and "--hash=sha256:" in text
    assert "pytest" not in text, "the dev group must not reach the image"
    assert "bookshop" not in text.split("#")[0], "the project itself is copied, not installed"


def test_plain_requirements_with_nested_includes_are_flattened(project):
    write(project, {
        "requirements.txt": "-r requirements/base.txt\ngunicorn>=23  # web\n",
        "requirements/base.txt": "django>=5.2,<5.3\n--requirement=more.txt\n",
        "requirements/more.txt": "celery[redis] \\\n  >=5.7\n",
    })
    out = project.parent / "req.txt"
    info = summary(run(project, out=out))
    assert info["kind"] == "requirements" and info["hashed"] == "0"
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert lines == ["django>=5.2,<5.3", "celery[redis]    >=5.7", "gunicorn>=23"]


def test_hashed_requirements_are_kept_hashed(project):
    write(project, {"requirements.txt": f"django==5.2.1 \\\n    --hash={HASH_A}\n"})
    out = project.parent / "req.txt"
    assert summary(run(project, out=out))["hashed"] == "1"
    assert HASH_A in out.read_text()


def test_explicit_file_wins_over_detection(project):
    write(project, {"requirements.txt": "django\n", "poetry.lock": "", "deps/prod.txt": "celery\n"})
    out = project.parent / "req.txt"
    info = summary(run(project, "--requirements", str(project / "deps" / "prod.txt"), out=out))
    assert info["source"].endswith("prod.txt")
    # Relative to the project works too.
    assert summary(run(project, "--requirements", "deps/prod.txt", out=out))["kind"] == "requirements"
    assert "celery" in out.read_text() and "django" not in out.read_text()


def test_bookshop_requirements_variant_matches_its_lock(tmp_path):
    """The plain requirements variant (requirements/production.txt, for PROJECT_REQUIREMENTS) names the
    same top-level packages as pyproject.toml's dependencies."""
    import tomllib
    out = tmp_path / "req.txt"
    summary(run(BOOKSHOP, "--requirements", "requirements/production.txt", out=out))
    names = {ln.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
             for ln in out.read_text().splitlines() if ln and not ln.startswith("#")}
    declared = tomllib.loads((BOOKSHOP / "pyproject.toml").read_text())["project"]["dependencies"]
    assert names == {d.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in declared}


def test_no_dependency_file_is_refused(project):
    (project / "manage.py").write_text("")
    proc = run(project)
    assert proc.returncode == 2
    assert "no dependency file" in proc.stderr and "uv.lock, requirements.txt, poetry.lock" in proc.stderr


def test_several_dependency_files_are_refused_by_name(project):
    write(project, {"requirements.txt": "django\n", "uv.lock": "", "pyproject.toml": "[project]\nname='x'\n"})
    proc = run(project)
    assert proc.returncode == 2
    assert "several dependency files" in proc.stderr
    assert "uv.lock, requirements.txt" in proc.stderr and "PROJECT_REQUIREMENTS" in proc.stderr


def test_uv_lock_without_pyproject_is_refused(project):
    write(project, {"uv.lock": "version = 1\n"})
    proc = run(project)
    assert proc.returncode == 2 and "no pyproject.toml" in proc.stderr


@pytest.mark.parametrize("line, what", [
    ("-c constraints.txt", "constraints files"),
    ("-e git+https://example.invalid/x.git#egg=x", "editable installs"),
    ("./libs/mypkg", "local path"),
    ("mypkg @ file:///src/mypkg", "local path"),
])
def test_unsupported_requirement_lines_are_refused(project, line, what):
    write(project, {"requirements.txt": f"django\n{line}\n"})
    proc = run(project)
    assert proc.returncode == 2 and what in proc.stderr and line.split()[0] in proc.stderr


def test_missing_include_and_include_loops_are_refused(project):
    write(project, {"requirements.txt": "-r nope.txt\n"})
    assert "no such requirements file" in run(project).stderr
    write(project, {"requirements.txt": "-r a.txt\n", "a.txt": "-r requirements.txt\n"})
    assert "a loop" in run(project).stderr


def test_mixed_hashed_and_plain_is_refused(project):
    write(project, {"requirements.txt": f"django==5.2.1 --hash={HASH_A}\ncelery\n"})
    proc = run(project)
    assert proc.returncode == 2 and "no hash for celery" in proc.stderr


def test_unchanged_output_is_not_rewritten(project):
    write(project, {"requirements.txt": "django\n"})
    out = project.parent / "req.txt"
    summary(run(project, out=out))
    before = out.stat().st_mtime_ns
    summary(run(project, out=out))
    assert out.stat().st_mtime_ns == before


# ---- poetry.lock -----------------------------------------------------------------------------------

POETRY_21 = f"""
[[package]]
name = "django"
version = "5.2.1"
optional = false
python-versions = ">=3.10"
groups = ["main"]
files = [
    {{file = "django-5.2.1-py3-none-any.whl", hash = "{HASH_A}"}},
    {{file = "django-5.2.1.tar.gz", hash = "{HASH_B}"}},
]

[[package]]
name = "tzdata"
version = "2025.2"
optional = false
python-versions = ">=2"
groups = ["main"]
markers = {{main = "sys_platform == \\"win32\\""}}
files = [{{file = "tzdata-2025.2-py2.py3-none-any.whl", hash = "{HASH_A}"}}]

[[package]]
name = "pytest"
version = "8.3.0"
optional = false
python-versions = ">=3.8"
groups = ["dev"]
files = [{{file = "pytest-8.3.0-py3-none-any.whl", hash = "{HASH_A}"}}]

[[package]]
name = "argon2-cffi"
version = "23.1.0"
optional = true
python-versions = ">=3.7"
groups = ["main"]
files = [{{file = "argon2_cffi-23.1.0-py3-none-any.whl", hash = "{HASH_A}"}}]

[metadata]
lock-version = "2.1"
python-versions = ">=3.12"
content-hash = "0"
"""


def test_poetry_lock_becomes_hashed_requirements_of_the_main_group(project):
    write(project, {"poetry.lock": POETRY_21, "pyproject.toml": "[tool.poetry.dependencies]\npython = '^3.12'\n"})
    out = project.parent / "req.txt"
    info = summary(run(project, "--python", "3.13", out=out))
    assert info["kind"] == "poetry" and info["hashed"] == "1"
    assert "tool.poetry.dependencies.python" in info["python"]
    text = out.read_text()
    assert f"django==5.2.1 \\\n    --hash={HASH_A} \\\n    --hash={HASH_B}" in text
    assert 'tzdata==2025.2 ; sys_platform == "win32"' in text
    assert "pytest" not in text and "argon2" not in text


def test_poetry_lock_version_1_1_uses_categories(project):
    lock = POETRY_21.replace('groups = ["main"]', 'category = "main"').replace('groups = ["dev"]', 'category = "dev"')
    lock = lock.replace('lock-version = "2.1"', 'lock-version = "1.1"')
    lock = lock.replace('markers = {main = "sys_platform == \\"win32\\""}', 'markers = "sys_platform == \\"win32\\""')
    write(project, {"poetry.lock": lock})
    out = project.parent / "req.txt"
    summary(run(project, out=out))
    text = out.read_text()
    assert "django==5.2.1" in text and 'sys_platform == "win32"' in text and "pytest" not in text


def test_poetry_lock_2_0_without_groups_is_refused(project):
    lock = POETRY_21.replace('groups = ["main"]\n', "").replace('groups = ["dev"]\n', "")
    write(project, {"poetry.lock": lock.replace('lock-version = "2.1"', 'lock-version = "2.0"')})
    proc = run(project)
    assert proc.returncode == 2 and "poetry export" in proc.stderr


def test_poetry_git_source_is_refused(project):
    lock = POETRY_21.replace('name = "django"\nversion = "5.2.1"\n',
                             'name = "django"\nversion = "5.2.1"\n'
                             'source = {type = "git", url = "https://example.invalid/django.git"}\n')
    write(project, {"poetry.lock": lock})
    proc = run(project)
    assert proc.returncode == 2 and "django comes from a git source" in proc.stderr


# ---- Python version ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pin, python, ok", [
    ("3.13\n", "3.13", True),
    ("3.13.5\n", "3.13", True),
    ("cpython-3.13\n", "3.13.5", True),
    ("3.14\n", "3.13", False),
    ("3.12\n", "3.13", False),
    ("3.13.2\n", "3.13.5", False),
])
def test_python_version_file(project, pin, python, ok):
    write(project, {".python-version": pin, "requirements.txt": "django\n"})
    proc = run(project, "--python", python)
    if ok:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 2
        assert f"asks for Python {pin.strip()}" in proc.stderr and f"base image has Python {python}" in proc.stderr


@pytest.mark.parametrize("spec, python, ok", [
    (">=3.12", "3.13", True),
    (">=3.14", "3.13", False),
    (">=3.12,<3.13", "3.13", False),
    ("==3.13.*", "3.13", True),
    (">=3.13.2", "3.13", True),   # some 3.13 patch release satisfies it: the base's X.Y is what is known
    (">=3.13.6", "3.13.5", False),
    (">=3.14", "3.14", True),
])
def test_requires_python(project, spec, python, ok):
    write(project, {"pyproject.toml": f'[project]\nname = "x"\nrequires-python = "{spec}"\n',
                    "requirements.txt": "django\n"})
    proc = run(project, "--python", python)
    assert (proc.returncode == 0) is ok, proc.stderr
    if not ok:
        assert f"requires Python {spec}" in proc.stderr and f"base image has Python {python}" in proc.stderr


def test_bookshop_is_refused_on_an_older_base(tmp_path):
    proc = run(BOOKSHOP, "--python", "3.12", out=tmp_path / "req.txt")
    assert proc.returncode == 2 and "asks for Python 3.13" in proc.stderr


def test_pyproject_without_a_lock_is_refused_with_a_hint(project):
    write(project, {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["django"]\n'})
    proc = run(project)
    assert proc.returncode == 2 and "no dependency file" in proc.stderr and "uv lock" in proc.stderr
