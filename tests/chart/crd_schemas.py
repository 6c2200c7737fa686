"""JSON schemas of the CRD kinds the chart renders (KEDA, prometheus-operator), for strict validation.

The CRD YAML comes from the operators' own Go modules at pinned releases, downloaded through the Go
module proxy with `go mod download` (checksums verified against the Go checksum database), so no
third-party file is copied into this repository. Each CRD version's openAPIV3Schema becomes a JSON
schema; objects with listed properties get additionalProperties: false unless the CRD says
x-kubernetes-preserve-unknown-fields — the API server's strict field validation would reject unknown
fields there too.
"""
from __future__ import annotations

import copy
import functools
import json
import subprocess
from pathlib import Path

import jsonschema
import yaml

# module@version -> CRD files inside the module. Both projects are Apache-2.0.
CRD_SOURCES = {
    "github.com/kedacore/keda/v2@v2.21.0": [
        "config/crd/bases/keda.sh_scaledobjects.yaml",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
    ],
    "github.com/prometheus-operator/prometheus-operator@v0.85.0": [
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
    ],
}


def _module_dir(module_at_version: str) -> Path:
    proc = subprocess.run(["go", "mod", "download", "-json", module_at_version], capture_output=True, text=True)
    info = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or "Dir" not in info:
        raise RuntimeError(f"go mod download {module_at_version} failed: {info.get('Error') or proc.stderr}")
    return Path(info["Dir"])


def openapi_to_jsonschema(node):
    """Strict JSON schema from a CRD openAPIV3Schema (draft 2020-12 reads nullable/int-or-string this way)."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("type") == "object" and "properties" in node and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def _validators() -> dict[tuple[str, str], jsonschema.Validator]:
    validators = {}
    for module, files in CRD_SOURCES.items():
        root = _module_dir(module)
        for rel in files:
            crd = yaml.safe_load((root / rel).read_text())
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = openapi_to_jsonschema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                # metadata is validated by the API server, not by the CRD schema.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft202012Validator(schema)
    return validators


def validator_for(api_version: str, kind: str) -> jsonschema.Validator | None:
    """The CRD validator of a custom kind; None for built-in Kubernetes kinds."""
    if "/" in api_version and api_version.split("/")[0].endswith((".sh", "coreos.com")):
        found = _validators().get((api_version, kind))
        if found is None:
            raise AssertionError(f"no CRD schema for {api_version} {kind}")
        return found
    return None
