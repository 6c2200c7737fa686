#!/usr/bin/env python3
"""Write a test-only copy of the shipped alert rules with every `for:` at 0s (usage: fast_rules.py IN OUT).

The live test of the observability profile (test_observability.py) stops a worker pool and expects its
alert; the shipped CeleryPoolDown waits 10 minutes. Loaded next to the shipped file (PROMETHEUS_EXTRA_RULES,
compose/scripts/test-stack.sh), the copy fires on the same expression at once, and carries
`copy: fast-test` (alerts only; the shipped recording rules are not repeated) so the test tells it from the shipped rule (which must be pending meanwhile).
The shipped file itself is never edited or replaced.
"""

import sys

import yaml


def main(source: str, target: str) -> None:
    rules = yaml.safe_load(open(source, encoding="utf-8"))
    for group in rules["groups"]:
        group["name"] += "-fast-test"
        # Alerts only: the shipped recording rules already record their series once.
        group["rules"] = [rule for rule in group["rules"] if "alert" in rule]
        for rule in group["rules"]:
            rule["for"] = "0s"
            rule.setdefault("labels", {})["copy"] = "fast-test"
    with open(target, "w", encoding="utf-8") as out:
        out.write("# Written by tests/smoke/fast_rules.py for the smoke suite; do not edit.\n")
        yaml.safe_dump(rules, out, sort_keys=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
