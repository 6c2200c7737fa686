"""Files generated from the configuration contract, and the check that they are current.

Each generator returns a file's full new text from the contract (and, for files that also hold
hand-written parts, the current text: only the part between its marker lines is replaced):
- docs/configuration.md: one table per section, between `<!-- contract:table SECTION -->` and
  `<!-- contract:end -->`; the prose around them is kept;
- .env.example: the block between `# >>> contract` and `# <<< contract`: the variables with an
  `env_example` value, each under its doc;
- ansible/roles/app/files/contract-names.yml: every declared name (the Ansible role's allow-list);
- helm/django-celery/values.yaml: the `config.env` map between `# >>> contract` and `# <<< contract`
  (the non-secret variables the chart does not compute: those with `chart = "set"` at their chart
  default, the others as commented-out lines, unset);
- helm/django-celery/values.schema.json: `properties.config.properties.env`, the schema of that map
  (type, minimum/maximum, enum; additionalProperties false, so helm refuses an unknown name naming it).
- compose/compose.yaml: the block of the `x-app-env` map (every app process's environment) between
  `# >>> contract` and `# <<< contract`: the variables with `compose = "set"`, each as
  `NAME: ${NAME:-DEFAULT}` (compose_default when given, else the default), so a value in .env (or a project's
  configuration file) reaches the processes and an unset one gets that default. The entries Compose derives,
  fixes or gives one service only stay hand-written outside the block.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from pathlib import Path

from deploykit.contract import Contract, Variable, number

DOCS = "docs/configuration.md"
ENV_EXAMPLE = ".env.example"
ANSIBLE_NAMES = "ansible/roles/app/files/contract-names.yml"
CHART_VALUES = "helm/django-celery/values.yaml"
CHART_SCHEMA = "helm/django-celery/values.schema.json"
COMPOSE = "compose/compose.yaml"
GENERATED_BY = "make contract-render"

_DOC_TABLE = re.compile(r"(<!-- contract:table (?P<section>[^>]+?) -->\n)(?P<body>.*?)(<!-- contract:end -->)", re.S)
# A generated block in a hand-written file: its lines are indented like the opening marker.
_BLOCK = re.compile(r"(^(?P<indent> *)# >>> contract[^\n]*\n)(?P<body>.*?)(^ *# <<< contract\n)", re.S | re.M)
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")


class StaleError(ValueError):
    """A generated file cannot be rendered (markers missing) or differs from what the contract gives."""


def shown_default(var: Variable) -> str:
    """The Default column: the declared wording, else `required`, `empty` or the value in backticks."""
    if var.shown_default is not None:
        return var.shown_default
    if var.required:
        return "required"
    if var.default in (None, "", []):
        return "empty"
    if isinstance(var.default, bool):
        return f"`{str(var.default).lower()}`"
    if isinstance(var.default, list):
        return f"`{','.join(var.default)}`"
    if isinstance(var.default, float) and var.default.is_integer():
        return f"`{int(var.default)}`"
    return f"`{var.default}`"


def _type(var: Variable) -> str:
    if var.choices:
        return " \\| ".join(var.choices)
    bounds = [f">= {number(var.min)}" if var.min is not None else "", f"<= {number(var.max)}" if var.max is not None else ""]
    return " ".join([var.type, *filter(None, bounds)]) + (", secret" if var.secret else "")


def docs_table(variables: list[Variable]) -> str:
    rows = ["| Variable | Default | Type | Owner | Meaning |", "|---|---|---|---|---|"]
    rows += [f"| `{v.name}` | {shown_default(v)} | {_type(v)} | {v.owner} | {v.doc} |" for v in variables]
    return "\n".join(rows) + "\n"


def render_docs(contract: Contract, current: str) -> str:
    sections = contract.sections()
    seen: set[str] = set()

    def table(match: re.Match) -> str:
        section = match["section"]
        if section not in sections:
            raise StaleError(f"{DOCS}: the marker names section {section!r}, which declares no variable")
        seen.add(section)
        return match.group(1) + docs_table(sections[section]) + match.group(4)

    text = _DOC_TABLE.sub(table, current)
    missing = [s for s in sections if s not in seen]
    if missing:
        raise StaleError(f"{DOCS}: no `<!-- contract:table SECTION -->` marker for sections {missing}")
    return text


def render_env_example(contract: Contract, current: str) -> str:
    lines = []
    for var in contract.values():
        if var.env_example is None:
            continue
        note = f" Empty: the default, {var.default}." if var.env_example == "" and var.default not in (None, "", []) else ""
        doc = var.doc.replace("\\|", "|")  # a table cell's escaped bar
        lines += [f"# {doc}{note}", f"{var.name}={var.env_example}"]
    return _replace_block(current, ENV_EXAMPLE, lambda indent: lines)


def _replace_block(current: str, path, lines_for: Callable[[str], list[str]]) -> str:
    """`current` with its one generated block replaced by lines_for(the block's indent)."""
    def block(match: re.Match) -> str:
        return match.group(1) + "".join(line + "\n" for line in lines_for(match["indent"])) + match.group(4)

    text, count = _BLOCK.subn(block, current)
    if count != 1:
        raise StaleError(f"{path}: expected one block between '# >>> contract' and '# <<< contract'")
    return text


def render_ansible_names(contract: Contract, current: str = "") -> str:
    header = ["---", f"# Generated by `{GENERATED_BY}` from the configuration contract; do not edit.",
              "# The names app_env_extra may set (tasks/validate.yml): every declared variable."]
    return "\n".join([*header, *(f"- {name}" for name in contract)]) + "\n"


def chart_variables(contract: Contract) -> list[Variable]:
    """The variables `config.env` accepts: non-secret ones the chart's templates do not compute."""
    return [v for v in contract.values() if not v.secret and v.chart != "computed"]


def _yaml_scalar(value) -> str:
    """A default as values.yaml holds it: the environment's text, quoted unless a bool or a number."""
    text = _env_value(value)
    return text if isinstance(value, (bool, int, float)) else json.dumps(text)


def render_chart_values(contract: Contract, current: str) -> str:
    def block(indent: str) -> list[str]:
        lines = []
        for var in chart_variables(contract):
            doc = _LINK.sub(r"\1", var.doc).replace("\\|", "|")
            if var.chart == "set":
                value = var.chart_default if var.chart_default is not None else var.default
                lines += [f"{indent}# -- {var.name}: {doc}", f"{indent}{var.name}: {_yaml_scalar(value)}"]
            else:
                lines += [f"{indent}# {var.name}: {doc}", f"{indent}# {var.name}: {_yaml_scalar(var.default)}"]
        return lines

    return _replace_block(current, CHART_VALUES, block)


def _schema(var: Variable) -> dict:
    kind = {"int": "integer", "float": "number", "bool": "boolean"}.get(var.type, "string")
    schema: dict = {"type": kind}
    if var.choices:
        schema["enum"] = list(var.choices)
    if var.min is not None:
        schema["minimum"] = var.min
    if var.max is not None:
        schema["maximum"] = var.max
    return schema


def render_chart_schema(contract: Contract, current: str) -> str:
    try:
        schema = json.loads(current)
        config = schema["properties"]["config"]
    except (ValueError, KeyError, TypeError):
        raise StaleError(f"{CHART_SCHEMA}: expected a JSON schema with properties.config") from None
    config.setdefault("properties", {})["env"] = {
        "type": "object",
        "description": f"Generated by `{GENERATED_BY}` from the configuration contract; do not edit.",
        "additionalProperties": False,
        "properties": {var.name: _schema(var) for var in chart_variables(contract)},
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def compose_variables(contract: Contract) -> list[Variable]:
    """The variables compose.yaml's generated block passes to every app process."""
    return [v for v in contract.values() if v.compose == "set"]


def _env_value(value) -> str:
    """A default as an environment variable holds it: a list comma-separated, a bool `true`/`false`."""
    if value is None or value == []:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, (int, float)):
        return number(value)
    return str(value)


def render_compose(contract: Contract, current: str) -> str:
    def block(indent: str) -> list[str]:
        lines = []
        for var in compose_variables(contract):
            default = _env_value(var.compose_default if var.compose_default is not None else var.default)
            if "$" in default or "}" in default or "\n" in default:
                raise StaleError(f"{COMPOSE}: {var.name}'s default {default!r} cannot be written inside ${{...:-}}")
            value = f"${{{var.name}:-{default}}}"
            # `${` starts a plain YAML scalar: quoted only when the default holds what would end it.
            plain = ": " not in default and " #" not in default
            lines.append(f"{indent}{var.name}: {value if plain else json.dumps(value)}")
        return lines

    return _replace_block(current, COMPOSE, block)


GENERATORS: dict[str, Callable[[Contract, str], str]] = {
    DOCS: render_docs,
    ENV_EXAMPLE: render_env_example,
    ANSIBLE_NAMES: render_ansible_names,
    CHART_VALUES: render_chart_values,
    CHART_SCHEMA: render_chart_schema,
    COMPOSE: render_compose,
}


def render_all(contract: Contract, root: Path) -> dict[str, str]:
    """The new text of every generated file under `root` (relative path -> text)."""
    rendered = {}
    for relpath, generate in GENERATORS.items():
        path = root / relpath
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        rendered[relpath] = generate(contract, current)
    return rendered


def write(contract: Contract, root: Path) -> list[str]:
    """Write the generated files; return the ones that changed."""
    changed = []
    for relpath, text in render_all(contract, root).items():
        path = root / relpath
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(relpath)
    return changed


def stale(contract: Contract, root: Path) -> dict[str, str]:
    """The generated files that differ from what the contract gives: relative path -> unified diff."""
    diffs = {}
    for relpath, text in render_all(contract, root).items():
        path = root / relpath
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            diffs[relpath] = "".join(difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f"{relpath} (committed)", tofile=f"{relpath} (from the contract)"))
    return diffs
