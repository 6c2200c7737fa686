"""The release published into a REAL registry (Debian's docker-registry, CNCF distribution) on 127.0.0.1:
started for the session by scripts/release/local-registry.sh on a free port with empty storage, the
release published into it by scripts/release/release.sh (what `make release` runs: the images the last
`make images` built, the chart, SBOMs, cosign signatures with a key pair made for the run), stopped at
the end. Run: `make test-release-registry`."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "scripts" / "release"
PASSWORD = "test-run-only"


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """host:port of the session's registry."""
    workdir = tmp_path_factory.mktemp("registry")
    address = subprocess.run([str(RELEASE / "local-registry.sh"), "start", str(workdir)],
                             check=True, capture_output=True, text=True).stdout.strip()
    yield address
    subprocess.run([str(RELEASE / "local-registry.sh"), "stop", str(workdir)], check=True)
    # Docker's names for the registry's images (tags and digests) would outlive it, one set per run.
    listed = subprocess.run(["docker", "image", "ls", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"],
                            check=True, capture_output=True, text=True).stdout.splitlines()
    names = set()
    for repo, tag, digest in (line.split() for line in listed if line.startswith(f"{address}/")):
        names |= {f"{repo}:{tag}"} if tag != "<none>" else set()
        names |= {f"{repo}@{digest}"} if digest != "<none>" else set()
    if names:
        subprocess.run(["docker", "image", "rm", *sorted(names)], capture_output=True)


@pytest.fixture(scope="session")
def cosign_keys(tmp_path_factory) -> Path:
    """A cosign key pair made for this run only (cosign.key, cosign.pub); never kept."""
    keys = tmp_path_factory.mktemp("cosign")
    subprocess.run([str(RELEASE / "cosign" / "run.sh"), "generate-key-pair"], cwd=keys, check=True,
                   capture_output=True, env={**os.environ, "COSIGN_PASSWORD": PASSWORD})
    return keys


@pytest.fixture(scope="session")
def release(registry, cosign_keys, tmp_path_factory) -> dict:
    """The release record of `make release`'s script into the session's registry (namespace blueprint),
    signed with the run's key: SBOMs in sbom/ beside it."""
    out = tmp_path_factory.mktemp("release")
    done = subprocess.run([str(RELEASE / "release.sh"), f"{registry}/blueprint", str(out)], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, "COSIGN_KEY": str(cosign_keys / "cosign.key"),
                               "COSIGN_PASSWORD": PASSWORD, "RELEASE_ALLOW_DIRTY": "1"})
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((out / "release.json").read_text())
    record["path"] = out / "release.json"
    record["output"] = done.stdout
    return record


def copy_release(record: dict, tmp_path: Path) -> Path:
    """A copy of the record (without the fixture's keys) and its SBOMs, for tests to tamper with."""
    shutil.copytree(record["path"].parent, tmp_path / "release")
    path = tmp_path / "release" / "release.json"
    path.write_text(json.dumps({k: v for k, v in record.items() if k not in ("path", "output")}))
    return path


def verify(record: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """scripts/release/verify-release.py over a copy of the record (tests tamper with theirs)."""
    return subprocess.run([sys.executable, str(RELEASE / "verify-release.py"), str(copy_release(record, tmp_path))],
                          capture_output=True, text=True)


def verify_signatures(record: dict, tmp_path: Path, public_key: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RELEASE / "cosign-release.py"), "verify", str(copy_release(record, tmp_path)),
                           "--key", str(public_key)], capture_output=True, text=True)


@pytest.fixture
def helm():
    found = shutil.which("helm")
    assert found, "helm is missing: make k8s-tools"
    return found
