#!/usr/bin/env python3
"""Set the release version: write VERSION and every place derived from it (version_places.py).

k8s/base is rendered from the chart, so `make version-bump` re-renders it after this script.
CHANGELOG.md is left to the person releasing: its Unreleased entries move under the version when tagged.

Usage: scripts/release/bump-version.py X.Y.Z [--root DIR]
"""
import argparse
import sys
from pathlib import Path

import version_places


def bump(root: Path, new: str) -> list[str]:
    """Rewrite every written place to `new`; return the files changed."""
    places = list(version_places.find(root, written_only=True))
    for rel, regex, found in places:
        if regex is None or not found:
            raise SystemExit(f"ERROR: {rel}: no version found where one is expected (nothing written)")
    changed = []
    (root / version_places.VERSION_FILE).write_text(new + "\n")
    for rel, regex, _ in places:
        path = root / rel
        text = path.read_text()
        # Replace only the version group of each match, from the end so earlier offsets stay valid.
        for match in reversed(list(regex.finditer(text))):
            text = text[:match.start("v")] + new + text[match.end("v"):]
        if text != path.read_text():
            path.write_text(text)
            changed.append(rel)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    if not version_places.is_semver(args.version):
        print(f"ERROR: '{args.version}' is not a SemVer version (x.y.z[-pre])", file=sys.stderr)
        return 2
    old = version_places.read_version(args.root)
    changed = bump(args.root, args.version)
    print(f"==> version {old} -> {args.version}: VERSION {' '.join(sorted(set(changed)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
