"""python -m deploykit.contract render|check|names [--project FILE] [--root DIR]

render  write the generated files (docs/configuration.md's tables, .env.example's block, the Ansible
        allow-list, the chart's config.env block and schema, compose.yaml's app environment block) under
        --root from deploykit's contract plus the project's file
check   exit 1, with a diff naming each file, when a generated file is stale
names   print every declared name, one a line
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploykit.contract import ContractError, load, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploykit.contract", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("render", "check", "names"))
    parser.add_argument("--project", type=Path, help="the project's declarations (e.g. app/contract.toml)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: the current directory)")
    args = parser.parse_args(argv)
    try:
        contract = load(project=args.project)
        if args.command == "names":
            print("\n".join(contract))
        elif args.command == "render":
            changed = render.write(contract, args.root)
            print(f"contract: {len(contract)} variables; " + (f"rewrote {', '.join(changed)}" if changed else "every generated file is current"))
        else:
            diffs = render.stale(contract, args.root)
            for relpath, diff in diffs.items():
                print(f"STALE: {relpath} differs from the contract (run `{render.GENERATED_BY}`):\n{diff}", file=sys.stderr)
            if diffs:
                return 1
            print(f"contract: {len(contract)} variables; every generated file is current")
    except (ContractError, render.StaleError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
