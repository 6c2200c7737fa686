#!/usr/bin/env python3
"""Write the Compose pools file: one `worker-<pool>` service per worker pool declared in the env files.

    compose/scripts/gen-pools.py --env-file .env [--env-file PROJECT_ENV] [-f compose/rabbitmq.yaml ...] -o OUT
    compose/scripts/gen-pools.py ... -o OUT --check    # exit 1 if OUT is not what this would write

Declarations (docs/compose.md#worker-pools), later env files winning as with `docker compose --env-file`:
    WORKER_POOLS=default,io,images            # comma-separated names: lowercase letters, digits, single hyphens
    WORKER_<POOL>_QUEUES=io                   # required, comma-separated, any queue names
    WORKER_<POOL>_POOL / _CONCURRENCY / _AUTOSCALE / _REPLICAS / _CPUS / _MEMORY   # optional
(<POOL>: the name upper-cased, `-` as `_`.) Each service extends the `pool` template of compose/compose.yaml.
A variant file given with -f (RabbitMQ, S3, development mode) says what it changes in every pool in its
top-level `x-pool` key, merged into each service here: Compose cannot apply one override to services it
does not name. migrate's DEPLOYKIT_CONSUMED_QUEUES gets every pool's queues. Anything malformed is refused
with the variable's name; nothing is skipped.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_FILE = ROOT / "compose" / "compose.yaml"
TEMPLATE_SERVICE = "pool"
# Lowercase so the service name (worker-<name>) is valid and <POOL> maps back to one name only.
POOL_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# What the Helm chart accepts (docs/helm.md): no comma, since CELERY_WORKER_QUEUES is a comma-separated list.
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$")
POOL_TYPES = ("prefork", "threads", "solo")  # the contract's CELERY_WORKER_POOL choices
SETTINGS = ("QUEUES", "POOL", "CONCURRENCY", "AUTOSCALE", "REPLICAS", "CPUS", "MEMORY")
# WORKER_* variables that are not per-pool settings (compose/compose.yaml's template reads them).
GLOBALS = {"WORKER_POOLS", "WORKER_CPUS", "WORKER_MEMORY", "WORKER_STOP_GRACE_PERIOD"}
# The three fixed services' settings before pools were data (CHANGELOG.md): refused, not ignored.
RETIRED = {"WORKER_QUEUES", "WORKER_POOL", "WORKER_CONCURRENCY", "WORKER_AUTOSCALE", "WORKER_REPLICAS"}


class Refused(Exception):
    pass


class Tagged:
    """A Compose merge tag (`!reset`, `!override`) carried from a variant's x-pool to the output."""

    def __init__(self, tag: str, value):
        self.tag, self.value = tag, value


class Loader(yaml.SafeLoader):
    pass


class Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # every service spelled out: the file is read by people too
        return True


def _tagged(loader, node):
    build = {yaml.SequenceNode: loader.construct_sequence, yaml.MappingNode: loader.construct_mapping}
    return Tagged(node.tag, build.get(type(node), loader.construct_scalar)(node, deep=True))


for _tag in ("!reset", "!override"):
    Loader.add_constructor(_tag, _tagged)
Dumper.add_representer(Tagged, lambda dumper, t: (
    dumper.represent_sequence(t.tag, t.value) if isinstance(t.value, list)
    else dumper.represent_mapping(t.tag, t.value) if isinstance(t.value, dict)
    else dumper.represent_scalar(t.tag, t.value or "")))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as `docker compose --env-file` reads them (comments, `export`, quotes)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if value[:1] in ("'", '"') and value.find(value[0], 1) > 0:
            value = value[1:value.find(value[0], 1)]  # what follows the closing quote is a comment
        else:
            value = value.split(" #", 1)[0].strip()
        values[key] = value
    return values


def merged_env(paths: list[Path]) -> tuple[dict[str, str], dict[str, Path]]:
    """Every WORKER_* variable with the file it came from (the last file that sets it)."""
    values, origin = {}, {}
    for path in paths:
        for key, value in read_env_file(path).items():
            if key.startswith("WORKER_"):
                values[key], origin[key] = value, path
    return values, origin


def pool_key(name: str) -> str:
    return "WORKER_" + name.upper().replace("-", "_") + "_"


def declared_pools(values: dict[str, str], where) -> list[str]:
    if "WORKER_POOLS" not in values:
        raise Refused("WORKER_POOLS is not set in any env file: declare the worker pools (see .env.example)")
    names = values["WORKER_POOLS"].replace(",", " ").split()  # commas; spaces too, as a shell would not take them
    if not names:
        raise Refused(f"WORKER_POOLS{where('WORKER_POOLS')} is empty: declare at least one pool")
    problems = [f"WORKER_POOLS{where('WORKER_POOLS')}: pool name {name!r} is malformed (lowercase letters, "
                "digits and single hyphens, starting with a letter)" for name in names if not POOL_NAME.match(name)]
    problems += [f"WORKER_POOLS{where('WORKER_POOLS')}: pool {name!r} is declared twice"
                 for name in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise Refused("\n".join(problems))
    return names


def owner(key: str, names: list[str]) -> str | None:
    """The declared pool a WORKER_<POOL>_* variable belongs to (the longest matching prefix)."""
    matches = [n for n in names if key.startswith(pool_key(n))]
    return max(matches, key=len) if matches else None


def _autoscale(value: str) -> bool:
    bounds = re.fullmatch(r"(\d+),(\d+)", value)
    return bool(bounds) and int(bounds[1]) >= max(int(bounds[2]), 1)


# The optional settings: (valid?, what a valid value is).
CHECKS = {
    "POOL": (lambda v: v in POOL_TYPES, f"one of {', '.join(POOL_TYPES)}"),
    "CONCURRENCY": (str.isdigit, "a whole number >= 0"),
    "AUTOSCALE": (_autoscale, '"max,min" with max >= min and max >= 1'),
    "REPLICAS": (str.isdigit, "a whole number >= 0"),
    "CPUS": (lambda v: bool(re.fullmatch(r"\d+(\.\d+)?", v)) and float(v) > 0, "a number of CPUs > 0"),
    "MEMORY": (lambda v: bool(re.fullmatch(r"\d+(\.\d+)?([bkmgBKMG][bB]?)?", v)), "a size such as 768M or 1g"),
}
# Where each setting goes: the worker's environment (deploykit-worker reads it) or Compose's deploy keys.
ENVIRONMENT = {"QUEUES": "CELERY_WORKER_QUEUES", "POOL": "CELERY_WORKER_POOL",
               "CONCURRENCY": "CELERY_WORKER_CONCURRENCY", "AUTOSCALE": "CELERY_WORKER_AUTOSCALE"}


def pool_service(name: str, settings: dict[str, str], var) -> tuple[dict, list[str], list[str]]:
    """(the service's own keys, its queues, problems) for one pool; settings are its WORKER_<POOL>_* values."""
    problems = []
    queues = [q.strip() for q in settings.get("QUEUES", "").split(",")]
    if not any(queues):
        problems.append(f"{var('QUEUES')} is missing or empty: pool {name!r} must consume at least one queue")
    problems += [f"{var('QUEUES')}: queue name {q!r} is malformed (letters, digits, _ . : -; at most 200)"
                 for q in queues if any(queues) and not QUEUE_NAME.match(q)]
    problems += [f"{var('QUEUES')}: queue {q!r} is listed twice" for q in sorted({q for q in queues if queues.count(q) > 1})]
    given = {key: settings[key] for key in SETTINGS if key != "QUEUES" and settings.get(key)}  # in SETTINGS' order
    problems += [f"{var(key)}: must be {CHECKS[key][1]}, got {value!r}" for key, value in given.items()
                 if not CHECKS[key][0](value)]
    service = {"environment": {ENVIRONMENT[k]: v for k, v in {"QUEUES": ",".join(queues), **given}.items()
                               if k in ENVIRONMENT}}
    limits = {key.lower(): given[key] for key in ("CPUS", "MEMORY") if key in given}
    deploy = {"replicas": int(given["REPLICAS"])} if given.get("REPLICAS", "").isdigit() else {}
    if limits:
        deploy["resources"] = {"limits": limits}
    if deploy:
        service["deploy"] = deploy
    return service, [q for q in queues if q], problems


def merge(base: dict, fragment: dict) -> dict:
    """A variant's x-pool over a pool's own keys, as Compose merges a later file: mappings merge, a list
    after a `!reset`/`!override` one replaces the template's with both (S3 mode's no media volume, then
    development mode's code mount), anything else replaces."""
    out = dict(base)
    for key, value in fragment.items():
        before = out.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            out[key] = merge(before, value)
        elif isinstance(value, list) and isinstance(before, Tagged) and isinstance(before.value, list):
            out[key] = Tagged("!override", before.value + value)
        else:
            out[key] = value
    return out


def variant_fragment(path: Path) -> dict:
    model = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader) or {}
    fragment = model.get("x-pool") or {}
    if not isinstance(fragment, dict):
        raise Refused(f"{path}: x-pool must be a mapping of service keys")
    return fragment


def generate(env_files: list[Path], variants: list[Path], command: str) -> str:
    values, origin = merged_env(env_files)

    def where(key: str) -> str:
        return f" (in {origin[key]})" if key in origin else ""

    problems = [f"{key}{where(key)} is no longer read: pools are declared with WORKER_POOLS and "
                f"WORKER_<POOL>_QUEUES etc. (CHANGELOG.md)" for key in sorted(RETIRED & set(values))]
    try:
        names = declared_pools(values, where)
    except Refused as exc:  # an .env from before pools were data: name its old variables too
        raise Refused("\n".join([*problems, str(exc)])) from None
    settings: dict[str, dict[str, str]] = {name: {} for name in names}
    for key in sorted(set(values) - GLOBALS - RETIRED):
        name = owner(key, names)
        if name is None:
            continue  # another project's pool (e.g. .env's reference pools under a project's own file)
        setting = key[len(pool_key(name)):]
        if setting not in SETTINGS:
            problems.append(f"{key}{where(key)}: pool {name!r} has no setting {setting!r} "
                            f"(one of {', '.join(SETTINGS)})")
        else:
            settings[name][setting] = values[key]
    fragments = [variant_fragment(path) for path in variants]
    # Compose reads extends.file from the project directory (compose/, the first file's), wherever this file is.
    extends = {"file": TEMPLATE_FILE.name, "service": TEMPLATE_SERVICE}
    services, consumed = {}, []
    for name in names:
        own, queues, pool_problems = pool_service(name, settings[name], lambda s, n=name: pool_key(n) + s + where(pool_key(n) + s))
        problems += pool_problems
        service = {"extends": extends, "profiles": Tagged("!reset", []), **own}
        for fragment in fragments:
            service = merge(service, fragment)
        services[f"worker-{name}"] = service
        consumed += [q for q in queues if q not in consumed]
    if problems:
        raise Refused("\n".join(problems))
    services["migrate"] = {"environment": {"DEPLOYKIT_CONSUMED_QUEUES": ",".join(consumed)}}
    header = (f"# Generated: do not edit. The worker pools declared in the env files (WORKER_POOLS,\n"
              f"# WORKER_<POOL>_*: docs/compose.md#worker-pools), one service each. Regenerate with\n#   {command}\n")
    return header + yaml.dump({"services": services}, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", action="append", type=Path, default=[], required=True,
                        help="an env file declaring pools (repeatable; later files win)")
    parser.add_argument("-f", dest="variants", action="append", type=Path, default=[],
                        help="a variant Compose file whose x-pool applies to every pool (repeatable)")
    parser.add_argument("-o", dest="out", type=Path, required=True, help="the pools file to write")
    parser.add_argument("--check", action="store_true", help="only compare with OUT; exit 1 if it differs")
    args = parser.parse_args(argv)
    command = "compose/scripts/gen-pools.py " + " ".join(
        [f"--env-file {p}" for p in args.env_file] + [f"-f {p}" for p in args.variants] + [f"-o {args.out}"])
    try:
        text = generate(args.env_file, args.variants, command)
    except (Refused, OSError) as exc:
        print(f"ERROR: worker pools: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
            print(f"ERROR: {args.out} is stale (not what the pools declared in {', '.join(map(str, args.env_file))} "
                  f"make); regenerate it with: {command}", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
