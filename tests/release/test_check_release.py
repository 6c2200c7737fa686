"""scripts/release/check-release.py and bump-version.py on throw-away git repositories made from this
checkout's own release files: the check fails when helm/ changed since the last release tag and the
version did not, when a version place disagrees, or when CHANGELOG.md lost its Unreleased section."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECK = REPO_ROOT / "scripts" / "release" / "check-release.py"
BUMP = REPO_ROOT / "scripts" / "release" / "bump-version.py"
# What the check reads: the version places, the chart (all of helm/) and the changelog.
RELEASE_FILES = ["VERSION", "CHANGELOG.md", "README.md", "deploykit/pyproject.toml", "k8s/base/django-celery.yaml"]
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def run(script: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args, "--root", str(root)], capture_output=True, text=True)


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def bump(root: Path, version: str) -> None:
    """What `make version-bump` does: the script, then k8s/base re-rendered (here: its chart label)."""
    old = (root / "VERSION").read_text().strip()
    assert run(BUMP, root, version).returncode == 0
    base = root / "k8s" / "base" / "django-celery.yaml"
    base.write_text(base.read_text().replace(f"django-celery-{old}", f"django-celery-{version}"))


def change_chart(root: Path) -> None:
    values = root / "helm" / "django-celery" / "values.yaml"
    values.write_text(values.read_text() + "# a chart change\n")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding this checkout's release files, committed, without a tag."""
    root = tmp_path / "repo"
    for rel in RELEASE_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / rel, root / rel)
    shutil.copytree(REPO_ROOT / "helm", root / "helm")
    for overlay in (REPO_ROOT / "k8s" / "overlays").iterdir():
        (root / "k8s" / "overlays" / overlay.name).mkdir(parents=True)
        shutil.copy(overlay / "kustomization.yaml", root / "k8s" / "overlays" / overlay.name)
    git(root, "init", "-q")
    commit(root, "release files")
    return root


@pytest.fixture
def tagged(repo: Path) -> Path:
    version = (repo / "VERSION").read_text().strip()
    git(repo, "tag", f"v{version}")
    return repo


def test_this_checkout_passes():
    proc = run(CHECK, REPO_ROOT)
    assert proc.returncode == 0, proc.stderr


def test_no_release_tag_passes_with_a_message(repo):
    change_chart(repo)
    proc = run(CHECK, repo)
    assert proc.returncode == 0, proc.stderr
    assert "no release tag" in proc.stdout


def test_not_a_git_checkout_passes_with_a_message(repo):
    shutil.rmtree(repo / ".git")
    proc = run(CHECK, repo)
    assert proc.returncode == 0, proc.stderr
    assert "not a git checkout" in proc.stdout


def test_tag_with_helm_unchanged_passes(tagged):
    (tagged / "CHANGELOG.md").write_text((tagged / "CHANGELOG.md").read_text() + "\n- not a chart change\n")
    commit(tagged, "changelog only")
    proc = run(CHECK, tagged)
    assert proc.returncode == 0, proc.stderr
    assert "helm/ unchanged since v" in proc.stdout


@pytest.mark.parametrize("how", ["committed", "uncommitted", "untracked"])
def test_helm_changed_without_a_version_bump_fails(tagged, how):
    if how == "untracked":
        (tagged / "helm" / "django-celery" / "templates" / "new.yaml").write_text("# new template\n")
    else:
        change_chart(tagged)
    if how == "committed":
        commit(tagged, "chart change")
    proc = run(CHECK, tagged)
    assert proc.returncode == 1
    assert "helm/ changed since v" in proc.stderr and "but the chart version is still" in proc.stderr


def test_helm_changed_with_a_version_bump_passes(tagged):
    change_chart(tagged)
    bump(tagged, "0.2.0")
    commit(tagged, "chart change, 0.2.0")
    proc = run(CHECK, tagged)
    assert proc.returncode == 0, proc.stderr
    assert "-> 0.2.0" in proc.stdout


def test_a_lower_version_than_the_tag_fails(repo):
    bump(repo, "1.0.0")
    commit(repo, "1.0.0")
    git(repo, "tag", "v1.0.0")
    change_chart(repo)
    bump(repo, "0.9.0")
    proc = run(CHECK, repo)
    assert proc.returncode == 1
    assert "lower than 1.0.0" in proc.stderr


def test_the_nearest_release_tag_counts_and_other_tags_do_not(tagged):
    change_chart(tagged)
    bump(tagged, "0.2.0")
    commit(tagged, "0.2.0")
    git(tagged, "tag", "v0.2.0")
    change_chart(tagged)
    commit(tagged, "another chart change")
    git(tagged, "tag", "k8s-snapshot")
    proc = run(CHECK, tagged)
    assert proc.returncode == 1
    assert "changed since v0.2.0 but the chart version is still 0.2.0" in proc.stderr


def test_a_disagreeing_version_place_fails(repo):
    overlay = next((repo / "k8s" / "overlays").glob("*/kustomization.yaml"))
    overlay.write_text(overlay.read_text().replace('newTag: "', 'newTag: "9', 1))
    proc = run(CHECK, repo)
    assert proc.returncode == 1
    assert str(overlay.relative_to(repo)) in proc.stderr and "differs from VERSION" in proc.stderr


def test_a_missing_version_place_fails(repo):
    pyproject = repo / "deploykit" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("\nversion = ", "\n# version = "))
    proc = run(CHECK, repo)
    assert proc.returncode == 1
    assert "deploykit/pyproject.toml: no version found" in proc.stderr


def test_a_changelog_without_unreleased_fails(repo):
    changelog = repo / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace("## [Unreleased]", "## [0.0.1]"))
    proc = run(CHECK, repo)
    assert proc.returncode == 1
    assert "no '## [Unreleased]' section" in proc.stderr


def test_bump_writes_every_place(repo):
    old = (repo / "VERSION").read_text().strip()
    proc = run(BUMP, repo, "1.2.3-rc.1")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "VERSION").read_text() == "1.2.3-rc.1\n"
    chart = (repo / "helm" / "django-celery" / "Chart.yaml").read_text()
    assert "\nversion: 1.2.3-rc.1\n" in chart and '\nappVersion: "1.2.3-rc.1"\n' in chart
    assert '\nversion = "1.2.3-rc.1"\n' in (repo / "deploykit" / "pyproject.toml").read_text()
    for overlay in (repo / "k8s" / "overlays").glob("*/kustomization.yaml"):
        assert 'newTag: "1.2.3-rc.1"' in overlay.read_text()
    # Only k8s/base, which make version-bump re-renders with helm, still names the old version.
    proc = run(CHECK, repo)
    assert proc.returncode == 1
    errors = proc.stderr.splitlines()
    assert errors and all(line.startswith(f"ERROR: k8s/base/django-celery.yaml: {old} differs") for line in errors), errors


@pytest.mark.parametrize("version", ["1.2", "v1.2.3", "1.2.3+build.4", "01.2.3"])
def test_bump_refuses_what_is_not_semver(repo, version):
    proc = run(BUMP, repo, version)
    assert proc.returncode == 2
    assert "not a SemVer version" in proc.stderr
    assert git(repo, "status", "--porcelain") == ""


def test_a_stale_install_line_in_the_readme_fails_and_the_bump_writes_it(repo):
    version = (repo / "VERSION").read_text().strip()
    readme = repo / "README.md"
    assert f"--version {version}" in readme.read_text()
    readme.write_text(readme.read_text().replace(f"--version {version}", "--version 0.0.1"))
    proc = run(CHECK, repo)
    assert proc.returncode == 1
    assert f"README.md: 0.0.1 differs from VERSION {version}" in proc.stderr
    bump(repo, "0.3.0")
    assert "--version 0.3.0" in readme.read_text()
    assert run(CHECK, repo).returncode == 0
