"""The Django, Celery and kombu versions deploykit supports, checked when deploykit is imported.

The one source of the range is deploykit's own metadata (the `dependencies` of deploykit/pyproject.toml,
read back from the installed distribution, or from that file in a checkout that was never installed):
pip and uv refuse a version outside it, and this check catches one that got in anyway (`--no-deps`, a
later `pip install celery==...`) before deploykit runs on it. Celery and kombu stay on one minor series
there because deploykit overrides private members of both (delivery/redis_transport.py, unacked.py,
lost.py, request.py; celery.install_task_class), read against that series. Both ends of the range are
tested by `make test-matrix`.
"""

from __future__ import annotations

import importlib.metadata as metadata
import operator
import re
import tomllib
from pathlib import Path

CHECKED = ("django", "celery", "kombu")
OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
             "!=": operator.ne}
REQUIREMENT = re.compile(r"\s*([A-Za-z0-9._-]+)\s*(\[[^\]]*\])?\s*([^;]*)(;.*)?$")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"  # only in a checkout


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> tuple[int, ...]:
    """The release part of a version ("6.1.3" -> (6, 1, 3); "5.7.0rc1" -> (5, 7, 0))."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    if not match:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part) for part in match.group(0).split("."))


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


def satisfies(version: str, specifier: str) -> bool:
    """Whether `version` meets a specifier of plain comparisons (">=5.2,<6.2"): all deploykit declares."""
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        op = next((o for o in sorted(OPERATORS, key=len, reverse=True) if clause.startswith(o)), None)
        if op is None or "*" in clause:
            raise ValueError(f"unsupported version specifier {clause!r} (deploykit declares plain comparisons)")
        if not OPERATORS[op](*_padded(release(version), release(clause[len(op):]))):
            return False
    return True


def declared_requirements() -> list[str]:
    """deploykit's requirements: installed metadata first, else the checkout's pyproject.toml."""
    try:
        return metadata.requires("deploykit") or []
    except metadata.PackageNotFoundError:
        if not PYPROJECT.exists():
            return []
        return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]


def supported_ranges(requirements: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """canonical name -> (name as declared, specifier) for CHECKED (requirements of an extra skipped)."""
    ranges = {}
    for requirement in declared_requirements() if requirements is None else requirements:
        match = REQUIREMENT.match(requirement)
        if match and not (match.group(4) or "").strip() and canonical(match.group(1)) in CHECKED:
            clauses = [c.strip() for c in match.group(3).strip().strip("()").split(",") if c.strip()]
            clauses.sort(key=lambda clause: not clause.startswith(">"))  # lower bound first, as people write it
            ranges[canonical(match.group(1))] = (match.group(1), ",".join(clauses))
    return ranges


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def problems(ranges: dict[str, tuple[str, str]] | None = None, version_of=installed_version) -> list[str]:
    found = []
    for name, (declared, specifier) in (supported_ranges() if ranges is None else ranges).items():
        version = version_of(name)
        if version is not None and specifier and not satisfies(version, specifier):
            found.append(f"{declared} {version} is installed; deploykit supports {declared} {specifier}")
    return found


def check(ranges: dict[str, tuple[str, str]] | None = None, version_of=installed_version) -> None:
    found = problems(ranges, version_of)
    if found:
        raise ImportError("deploykit cannot run on these versions: " + "; ".join(found) + ". Install versions "
                          "in its range (pip install deploykit resolves them), or a deploykit that supports them.")
