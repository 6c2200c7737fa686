"""Render the chart with the real helm CLI and validate the objects (Apache Airflow's chart-test style).

render_chart(values=..., show_only=[...]) shells out to `helm template` and returns the parsed objects;
validate_objects() checks every object strictly against the Kubernetes schemas of several minor
versions (kubernetes-validate's bundled schemas) and CRD objects against their operators' CRD schemas.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from . import crd_schemas

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "django-celery"
# Three current Kubernetes minors; every rendered object must be valid for each.
KUBERNETES_VERSIONS = ("1.35.0", "1.36.0", "1.37.0")
RELEASE = "release"
NAMESPACE = "apps"
# The smallest values that render (external services given as URLs).
BASE_VALUES: dict[str, Any] = {
    "config": {"env": {"DJANGO_ALLOWED_HOSTS": "app.example.com"}},
    "database": {"url": "postgres://app:pw@db.example.com:5432/app"},
    "broker": {"url": "redis://:pw@redis.example.com:6379/0"},
    "workers": {"keda": {"redis": {"address": "redis.example.com:6379"}}},
}


class HelmFailed(Exception):
    """helm exited non-zero; .stderr holds its message."""

    def __init__(self, stderr: str):
        super().__init__(stderr)
        self.stderr = stderr


def helm_binary() -> str:
    found = shutil.which("helm", path=f"{REPO_ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        raise RuntimeError("helm is not installed: run scripts/setup/ensure-k8s-tools.sh helm (make chart-test does)")
    return found


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def run_helm(*args: str, values: dict | None = None) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(values or {}, f)
        values_file = f.name
    try:
        proc = subprocess.run([helm_binary(), *args, "--values", values_file], capture_output=True, text=True)
    finally:
        os.unlink(values_file)
    if proc.returncode != 0:
        raise HelmFailed(proc.stderr)
    return proc.stdout


def render_chart(
    values: dict | None = None,
    show_only: list[str] | None = None,
    *,
    name: str = RELEASE,
    base: bool = True,
    kube_version: str = KUBERNETES_VERSIONS[-1],
    api_versions: tuple[str, ...] = ("keda.sh/v1alpha1", "monitoring.coreos.com/v1"),
) -> list[dict]:
    """`helm template` the chart; returns the parsed objects (show_only: template paths under templates/)."""
    merged = deep_merge(BASE_VALUES, values or {}) if base else (values or {})
    args = ["template", name, str(CHART_DIR), "--namespace", NAMESPACE, "--kube-version", kube_version]
    for api in api_versions:
        args += ["--api-versions", api]
    for template in show_only or []:
        args += ["--show-only", template]
    out = run_helm(*args, values=merged)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind_name(objects: list[dict], kind: str, name: str) -> dict:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"no {kind}/{name} in {[(o['kind'], o['metadata']['name']) for o in objects]}")


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


@functools.lru_cache(maxsize=None)
def _kubernetes_validator(version: str, kind: str, api_version: str) -> jsonschema.Validator:
    """kubernetes-validate's strict schema for one kind, loaded once (its own validate() reloads every call)."""
    known = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) <= kv_utils.major_minor(version)]
    schema_dir = f"v{known[-1]}-local-strict"
    # kubernetes-validate's file naming: networking.k8s.io/v1 -> networking-v1, v1 -> v1.
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group}.json", version)
    definitions = _definitions(schema_dir, version)
    registry = Resource.from_contents(schema) @ Registry()
    registry = definitions @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@functools.lru_cache(maxsize=None)
def _definitions(schema_dir: str, version: str) -> Resource:
    return Resource.from_contents(kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version))


def validate_objects(objects: list[dict], versions: tuple[str, ...] = KUBERNETES_VERSIONS) -> None:
    """Raise AssertionError naming every invalid object (Kubernetes kinds per version; CRDs against their schema)."""
    problems = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        crd_validator = crd_schemas.validator_for(obj["apiVersion"], obj["kind"])
        if crd_validator is not None:
            problems += [f"{where}: {list(e.absolute_path)}: {e.message}" for e in crd_validator.iter_errors(obj)]
            continue
        for version in versions:
            try:
                validator = _kubernetes_validator(version, obj["kind"], obj["apiVersion"])
            except (FileNotFoundError, kv_utils.VersionNotSupportedError) as exc:
                problems.append(f"{where}: no schema for {obj['apiVersion']} in Kubernetes {version} ({exc})")
                continue
            problems += [f"{where} (k8s {version}): {list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]
    assert not problems, "invalid objects:\n" + "\n".join(problems)


def dump(objects: list[dict]) -> str:
    return json.dumps(objects, indent=1, sort_keys=True)
