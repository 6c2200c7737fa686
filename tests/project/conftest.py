"""The bookshop's uv.lock is made here when missing (it is not kept in the repository: a uv.lock names
the package index's host). `uv lock` with the host venv's uv; pyproject.toml's `exclude-newer` makes
the resolution the same on every machine, whenever it runs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

BOOKSHOP = Path(__file__).resolve().parents[2] / "examples" / "bookshop"


def ensure_bookshop_lock() -> None:
    lock = BOOKSHOP / "uv.lock"
    if lock.is_file() and lock.stat().st_mtime >= (BOOKSHOP / "pyproject.toml").stat().st_mtime:
        return
    uv = Path(sys.executable).parent / "uv"
    # From the project folder: a pyenv shim then reads its .python-version (3.13) to find an interpreter.
    proc = subprocess.run([str(uv), "lock", "--quiet", "--project", str(BOOKSHOP)], cwd=BOOKSHOP,
                          capture_output=True, text=True,
                          env={**os.environ, "UV_NATIVE_TLS": "1", "UV_PYTHON_DOWNLOADS": "never"}, timeout=300)
    assert proc.returncode == 0, f"uv lock of examples/bookshop failed:\n{proc.stderr}"


@pytest.fixture(scope="session", autouse=True)
def bookshop_lock() -> None:
    ensure_bookshop_lock()
