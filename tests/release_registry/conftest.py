"""The release published into a REAL registry (Debian's docker-registry, CNCF distribution) on 127.0.0.1:
started for the session by scripts/release/local-registry.sh on a free port with empty storage, the
release published into it by scripts/release/publish.py (the images the last `make images` built, and
the chart), stopped at the end. Run: `make test-release-registry`."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "scripts" / "release"


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """host:port of the session's registry."""
    workdir = tmp_path_factory.mktemp("registry")
    address = subprocess.run([str(RELEASE / "local-registry.sh"), "start", str(workdir)],
                             check=True, capture_output=True, text=True).stdout.strip()
    yield address
    subprocess.run([str(RELEASE / "local-registry.sh"), "stop", str(workdir)], check=True)


@pytest.fixture(scope="session")
def release(registry, tmp_path_factory) -> dict:
    """The release record of a publish into the session's registry (namespace blueprint)."""
    out = tmp_path_factory.mktemp("release") / "release.json"
    done = subprocess.run([sys.executable, str(RELEASE / "publish.py"), f"{registry}/blueprint", "--out", str(out)],
                          capture_output=True, text=True)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(out.read_text())
    record["path"] = out
    return record


def verify(record: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """scripts/release/verify-release.py over a copy of the record (tests tamper with theirs)."""
    path = tmp_path / "release.json"
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "path"}))
    return subprocess.run([sys.executable, str(RELEASE / "verify-release.py"), str(path)], capture_output=True, text=True)


@pytest.fixture
def helm():
    found = shutil.which("helm")
    assert found, "helm is missing: make k8s-tools"
    return found
