"""The bookshop's uv.lock is made when missing, by the Makefile's rule (it is not kept in the repository: a uv.lock names
the package index's host). `uv lock` with the host venv's uv; pyproject.toml's `exclude-newer` makes
the resolution the same on every machine, whenever it runs."""
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOOKSHOP = REPO / "examples" / "bookshop"


def ensure_bookshop_lock() -> None:
    # One recipe for the lock: the Makefile's (mk/compose.mk), which remakes it when pyproject.toml is newer.
    proc = subprocess.run(["make", "-s", "examples/bookshop/uv.lock"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"uv lock of examples/bookshop failed:\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="session", autouse=True)
def bookshop_lock() -> None:
    ensure_bookshop_lock()
