"""Build the chart README's values table from values.yaml's `# --` comments (like helm-docs).

`python -m tests.chart.values_table --write` rewrites the table in helm/django-celery/README.md;
test_readme.py fails when the committed table is stale.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "django-celery"
BEGIN, END = "<!-- values-table:begin -->", "<!-- values-table:end -->"


def described_paths(text: str) -> dict[str, str]:
    """Map dotted paths (list items as [n]) to the `# --` comment above them."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, path component)
    items: dict[str, int] = {}  # list path -> items seen
    pending = None

    def key_path(component: str) -> str:
        return "".join(c if c.startswith("[") or i == 0 else f".{c}" for i, c in enumerate([p for _, p in stack] + [component]))

    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped:
            continue
        indent = len(raw) - len(raw.lstrip())
        if stripped.startswith("- "):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = key_path("")
            index = items.get(parent, 0)
            items[parent] = index + 1
            stack.append((indent, f"[{index}]"))
            stripped, indent = stripped[2:].strip(), indent + 2
        if stripped.startswith("# --"):
            pending = stripped[4:].strip()
            continue
        match = re.match(r"^([A-Za-z0-9_.-]+):", stripped)
        if stripped.startswith("#") or not match:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = key_path(match.group(1))
        if pending is not None:
            out[path] = pending
            pending = None
        stack.append((indent, match.group(1)))
    return out


def leaf_rows(values: dict, descriptions: dict[str, str]) -> list[tuple[str, str, str]]:
    rows = []

    def walk(node, path):
        documented_items = any(k.startswith(f"{path}[0].") for k in descriptions)
        if (path in descriptions and not documented_items) or not isinstance(node, (dict, list)) or not node:
            rows.append((path, json.dumps(node), descriptions.get(path, "")))
            return
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node[0], dict):
            rows.append((path, f"{len(node)} items", descriptions.get(path, "")))
            walk(node[0], f"{path}[0]")
        else:
            rows.append((path, json.dumps(node), descriptions.get(path, "")))

    walk(values, "")
    return rows


def table() -> str:
    text = (CHART_DIR / "values.yaml").read_text()
    rows = leaf_rows(yaml.safe_load(text), described_paths(text))
    lines = ["| Key | Default | Description |", "|---|---|---|"]
    cell = lambda text: text.replace("|", "\\|")  # noqa: E731 — pipes would split the Markdown cell
    lines += [f"| `{p}` | `{cell(d)}` | {cell(desc)} |" for p, d, desc in rows]
    return "\n".join(lines)


def render_readme(readme: str) -> str:
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    path = CHART_DIR / "README.md"
    updated = render_readme(path.read_text())
    if "--write" in sys.argv:
        path.write_text(updated)
    else:
        sys.stdout.write(updated)
