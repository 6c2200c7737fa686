"""The configuration contract: every environment variable a deployment may set, declared once.

deploykit declares its own variables in `deploykit.toml` beside this module; a project layers its own
file of the same form over it (`load(project=...)`). Each variable has a name, a type, a default, bounds,
whether it is required or secret, an owner and a one-line doc. `deploykit.config.env.Env.value(name)` reads a
variable as declared; `deploykit.contract.render` generates the documentation and allow-lists from it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OWN_FILE = Path(__file__).with_name("deploykit.toml")
TYPES = ("str", "int", "float", "bool", "path", "enum", "url", "list")
OWNERS = ("django", "celery", "deploykit", "scripts", "app")
FIELDS = frozenset({"name", "type", "default", "min", "max", "choices", "required", "secret", "owner",
                    "section", "doc", "debug_default", "shown_default", "case", "env_example", "chart",
                    "chart_default", "compose", "compose_default"})
CHART = ("set", "computed")
COMPOSE = ("set",)
_PYTHON_TYPES = {"str": str, "path": str, "url": str, "enum": str, "int": int, "float": (int, float),
                 "bool": bool, "list": list}


class ContractError(ValueError):
    """A declaration is malformed: the message names the file and the variable."""


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    owner: str
    section: str
    doc: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    secret: bool = False
    debug_default: Any = None
    shown_default: str | None = None
    case: str | None = None
    env_example: str | None = None
    chart: str | None = None
    chart_default: Any = None
    compose: str | None = None
    compose_default: Any = None
    source: str = field(default="", compare=False)

    def bounds_problem(self, value: Any) -> str | None:
        """Why a parsed `value` is outside the declared bounds or choices, or None."""
        if self.min is not None and value < self.min:
            return f"must be at least {number(self.min)}, got {value}"
        if self.max is not None and value > self.max:
            return f"must be at most {number(self.max)}, got {value}"
        if self.choices and value not in self.choices:
            if len(self.choices) == 2:
                return f"must be {self.choices[0]!r} or {self.choices[1]!r}, got {value!r}"
            return f"must be one of {', '.join(self.choices)}, got {value!r}"
        return None


def number(bound: float) -> str:
    """A bound as written: 1, not 1.0."""
    return str(int(bound)) if float(bound).is_integer() else str(bound)


class Contract(Mapping[str, Variable]):
    """The declared variables, in declaration order (deploykit's first, then the project's)."""

    def __init__(self, variables: Iterable[Variable]):
        self._vars: dict[str, Variable] = {}
        for var in variables:
            if var.name in self._vars:
                first = self._vars[var.name].source
                raise ContractError(f"{var.name} is declared twice ({first} and {var.source}): "
                                    "declare each variable once")
            self._vars[var.name] = var

    def __getitem__(self, name: str) -> Variable:
        try:
            return self._vars[name]
        except KeyError:
            raise KeyError(f"{name} is not declared in the configuration contract") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._vars)

    def __len__(self) -> int:
        return len(self._vars)

    def sections(self) -> dict[str, list[Variable]]:
        grouped: dict[str, list[Variable]] = {}
        for var in self._vars.values():
            grouped.setdefault(var.section, []).append(var)
        return grouped


def parse_file(path: str | Path) -> list[Variable]:
    """The [[variable]] declarations of one TOML file, each checked; ContractError names what is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ContractError(f"{path}: {exc}") from None
    unknown = set(data) - {"variable"}
    if unknown:
        raise ContractError(f"{path}: unknown top-level keys {sorted(unknown)} (declare [[variable]] tables)")
    return [_variable(entry, str(path)) for entry in data.get("variable", [])]


def _variable(entry: dict[str, Any], source: str) -> Variable:
    name = entry.get("name")
    if not isinstance(name, str) or not name.isupper() or not name.replace("_", "").isalnum():
        raise ContractError(f"{source}: a variable has an invalid name {name!r} (UPPER_CASE expected)")
    where = f"{source}: {name}"
    unknown = set(entry) - FIELDS
    if unknown:
        raise ContractError(f"{where}: unknown fields {sorted(unknown)}")
    for key in ("type", "owner", "section", "doc"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ContractError(f"{where}: {key} is missing")
    if entry["type"] not in TYPES:
        raise ContractError(f"{where}: type {entry['type']!r} is not one of {', '.join(TYPES)}")
    if entry["owner"] not in OWNERS:
        raise ContractError(f"{where}: owner {entry['owner']!r} is not one of {', '.join(OWNERS)}")
    if "\n" in entry["doc"]:
        raise ContractError(f"{where}: doc must be one line")
    if entry["type"] == "enum" and not entry.get("choices"):
        raise ContractError(f"{where}: an enum needs choices")
    if ("min" in entry or "max" in entry) and entry["type"] not in ("int", "float"):
        raise ContractError(f"{where}: min/max apply to int and float only")
    if entry.get("chart") is not None and entry["chart"] not in CHART:
        raise ContractError(f"{where}: chart {entry['chart']!r} is not one of {', '.join(CHART)}")
    if "chart_default" in entry and entry.get("chart") != "set":
        raise ContractError(f"{where}: chart_default needs chart = \"set\"")
    if entry.get("compose") is not None and entry["compose"] not in COMPOSE:
        raise ContractError(f"{where}: compose {entry['compose']!r} is not one of {', '.join(COMPOSE)}")
    if "compose_default" in entry and entry.get("compose") != "set":
        raise ContractError(f"{where}: compose_default needs compose = \"set\"")
    var = Variable(**{**entry, "choices": tuple(entry.get("choices", ())), "source": source})
    for key in ("default", "debug_default", "chart_default", "compose_default"):
        value = getattr(var, key)
        if value is None:
            continue
        if not isinstance(value, _PYTHON_TYPES[var.type]) or (var.type != "bool" and isinstance(value, bool)):
            raise ContractError(f"{where}: {key} {value!r} is not of type {var.type}")
        problem = var.bounds_problem(value) if var.type != "list" else None
        if problem:
            raise ContractError(f"{where}: {key} {problem}")
    return var


def load(project: str | Path | None = None) -> Contract:
    """deploykit's contract, plus the project's declarations when a file is given."""
    variables = parse_file(OWN_FILE)
    if project is not None:
        variables += parse_file(project)
    return Contract(variables)
