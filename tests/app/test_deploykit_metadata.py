"""deploykit declares every distribution it imports (#17 goal 2: "deploykit declares every dependency it
imports"), so installing its wheel with its dependencies into an empty environment gives a working package.

Walks deploykit's source with ast, keeps the top-level modules that are neither the standard library nor
deploykit itself, maps each to the distributions that provide it (importlib.metadata.packages_distributions(),
from the venv, where the locked set and deploykit are installed) and checks that deploykit's installed
metadata requires one of them (an extra counts: the S3 storage imports its modules only when enabled).
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import deploykit

SOURCE = Path(deploykit.__file__).parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules() -> dict[str, set[str]]:
    """Top-level module -> the files importing it (absolute imports only: relative ones are deploykit's)."""
    found: dict[str, set[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], set()).add(str(path.relative_to(SOURCE)))
    return found


def third_party(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    return {
        module: files
        for module, files in modules.items()
        if module not in sys.stdlib_module_names and module not in ("deploykit", "__future__")
    }


def declared_requirements() -> set[str]:
    """deploykit's Requires-Dist names, extras included."""
    requires = metadata.requires("deploykit") or []
    return {canonical(re.match(r"[A-Za-z0-9._-]+", requirement).group(0)) for requirement in requires}


def test_deploykit_is_installed_from_this_checkout():
    # The venv's deploykit (ensure-venv.sh: editable) is this checkout's source, with metadata.
    assert SOURCE == Path(__file__).resolve().parents[2] / "deploykit" / "src" / "deploykit"
    assert metadata.version("deploykit")


def test_the_walk_finds_the_imports_it_should():
    # Guards the walk itself: modules deploykit is known to import at the top of a file.
    modules = third_party(imported_top_level_modules())
    assert {"django", "celery", "kombu", "redis"} <= set(modules)
    assert "os" not in modules and "deploykit" not in modules


def test_every_imported_distribution_is_declared():
    providers = metadata.packages_distributions()
    declared = declared_requirements()
    missing = []
    for module, files in sorted(third_party(imported_top_level_modules()).items()):
        distributions = {canonical(d) for d in providers.get(module, [])}
        assert distributions, f"no installed distribution provides {module!r} (imported by {sorted(files)})"
        if not distributions & declared:
            missing.append(f"{module} (from {' or '.join(sorted(distributions))}; imported by {sorted(files)})")
    assert not missing, "deploykit/pyproject.toml does not declare: " + "; ".join(missing)
