#!/usr/bin/env python3
"""Check the release metadata of a checkout; exit 1 naming every problem found.

1. Every version place (version_places.py) equals VERSION, a SemVer version.
2. CHANGELOG.md keeps an `## [Unreleased]` section.
3. When helm/ changed since the last release tag (the nearest tag v<version> behind HEAD, working-tree
   changes included), the chart version differs from the one at that tag and is not lower.
   No tag yet, or no git checkout: passes, saying so.

Usage: scripts/release/check-release.py [--root DIR]   (default: the repository this script is in)
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

import version_places

TAG_GLOB = "v[0-9]*"
CHANGED_PATH = "helm/"


def check_versions(root: Path) -> list[str]:
    version = version_places.read_version(root)
    problems = [] if version_places.is_semver(version) else [f"VERSION: '{version}' is not a SemVer version (x.y.z[-pre])"]
    for path, regex, found in version_places.find(root):
        if regex is None or not found:
            problems.append(f"{path}: no version found where one is expected")
        problems += [f"{path}: {v} differs from VERSION {version}" for v in found if v != version]
    return problems


def check_changelog(root: Path) -> list[str]:
    path = root / "CHANGELOG.md"
    if not path.exists():
        return ["CHANGELOG.md is missing"]
    if not re.search(r"^## \[Unreleased\]", path.read_text(), re.MULTILINE):
        return ["CHANGELOG.md has no '## [Unreleased]' section"]
    return []


def git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def chart_version(chart_yaml: str) -> str:
    match = re.search(r"^version: (\S+)$", chart_yaml, re.MULTILINE)
    return match.group(1) if match else ""


def release_tuple(version: str) -> tuple[int, ...]:
    match = version_places.SEMVER.fullmatch(version)
    return tuple(int(n) for n in match.groups()[:3]) if match else ()


def check_chart_bumped(root: Path) -> tuple[list[str], str]:
    """(problems, a line saying what was compared)."""
    if git(root, "rev-parse", "--git-dir").returncode != 0:
        return [], "not a git checkout: chart version not compared with a release tag"
    described = git(root, "describe", "--tags", "--abbrev=0", "--match", TAG_GLOB, "HEAD")
    if described.returncode != 0:
        return [], f"no release tag ({TAG_GLOB}) yet: chart version not compared"
    tag = described.stdout.strip()
    tagged = git(root, "show", f"{tag}:{version_places.CHART}")
    if tagged.returncode != 0:
        return [], f"{tag} has no {version_places.CHART}: chart version not compared"
    before = chart_version(tagged.stdout)
    now = chart_version((root / version_places.CHART).read_text())
    diff = git(root, "diff", "--quiet", tag, "--", CHANGED_PATH)
    untracked = git(root, "ls-files", "--others", "--exclude-standard", "--", CHANGED_PATH).stdout.strip()
    if diff.returncode not in (0, 1):
        return [f"git diff {tag} -- {CHANGED_PATH} failed: {diff.stderr.strip()}"], ""
    if diff.returncode == 0 and not untracked:
        return [], f"{CHANGED_PATH} unchanged since {tag}"
    if now == before:
        return [f"{CHANGED_PATH} changed since {tag} but the chart version is still {now}: "
                f"make version-bump VERSION=<next> and note the change in CHANGELOG.md"], ""
    if release_tuple(now) < release_tuple(before):
        return [f"chart version {now} is lower than {before} at {tag}"], ""
    return [], f"{CHANGED_PATH} changed since {tag}; chart version {before} -> {now}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    root = parser.parse_args().root.resolve()
    problems = check_versions(root) + check_changelog(root)
    bump_problems, note = check_chart_bumped(root)
    problems += bump_problems
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"==> release metadata agrees: version {version_places.read_version(root)} everywhere, "
          f"CHANGELOG.md has Unreleased; {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
