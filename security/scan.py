"""`make security-scan`: checkov and hadolint over the infrastructure code, every skip in one file.

What is scanned (checkov has no Docker Compose framework; Compose is checked by
tests/security/test_compose_policy.py, which `make security-scan` runs as well):
  - Dockerfiles (compose/images/*/Dockerfile): checkov `dockerfile` and hadolint
  - the Helm chart, rendered by the pinned helm with the shipped environments and the bundled
    (evaluation) services: checkov `kubernetes` (rendering ourselves keeps the values explicit)
  - the kustomize base manifest (k8s/base, rendered from the chart): checkov `kubernetes`
  - the Ansible roles and playbooks: checkov `ansible`

Skips live in security/scan-skips.yaml only: each names a check, where it applies (fnmatch patterns
against "<file>::<resource>") and why. A skip that no longer matches any finding fails the scan too,
so the file never keeps stale exceptions. Checkov runs offline (no platform download or version check).
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCANNERS = REPO / ".tools" / "scanners" / "bin"
HELM = REPO / ".tools" / "bin" / "helm"
OUT = REPO / "build" / "security"
SKIPS = REPO / "security" / "scan-skips.yaml"
CHART = "helm/django-celery"

# Rendered variants: the shipped environments plus every bundled service (the evaluation set-up).
CHART_VARIANTS = {
    "production": ["-f", "helm/environments/production.yaml"],
    "staging": ["-f", "helm/environments/staging.yaml"],
    "bundled-redis": ["--set", "config.env.DJANGO_ALLOWED_HOSTS=app.example.com", "--set", "postgresql.enabled=true",
                      "--set", "redis.enabled=true", "--set", "pgbouncer.enabled=true",
                      "--set", "storage.backend=s3", "--set", "storage.s3.bucket=media",
                      "--set", "storage.objectStore.enabled=true"],
    "bundled-rabbitmq": ["--set", "config.env.DJANGO_ALLOWED_HOSTS=app.example.com", "--set", "postgresql.enabled=true",
                         "--set", "broker.type=rabbitmq", "--set", "rabbitmq.enabled=true"],
}


def render_chart() -> Path:
    target = OUT / "chart"
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.yaml"):
        old.unlink()
    for name, args in CHART_VARIANTS.items():
        rendered = subprocess.run([str(HELM), "template", "django-celery", CHART, "--namespace", "app", *args],
                                  cwd=REPO, check=True, capture_output=True, text=True).stdout
        (target / f"{name}.yaml").write_text(rendered)
    return target


def checkov_findings(chart_dir: Path) -> list[dict]:
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", SKIP_PACKAGE_UPDATE_CHECK="TRUE", LOG_LEVEL="WARNING",
               CHECKOV_ALLOW_DOWNLOAD="FALSE")
    report_dir = OUT / "checkov"
    cmd = [str(SCANNERS / "checkov"), "--skip-download", "--quiet", "--compact", "-o", "json",
           "--output-file-path", str(report_dir),
           "--framework", "dockerfile", "kubernetes", "ansible",
           "-d", "compose/images", "-d", "ansible", "-d", str(chart_dir.relative_to(REPO)),
           "-d", "k8s/base"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1 = findings; anything else is a crash
        sys.exit(f"checkov failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    reports = json.loads((report_dir / "results_json.json").read_text())
    reports = reports if isinstance(reports, list) else [reports]
    findings, passed = [], 0
    for report in reports:
        summary = report.get("summary", {})
        passed += summary.get("passed", 0)
        if summary.get("parsing_errors"):
            sys.exit(f"checkov could not parse {summary['parsing_errors']} file(s) in {report.get('check_type')}")
        for failed in report.get("results", {}).get("failed_checks", []):
            findings.append({
                "tool": "checkov", "check": failed["check_id"], "name": failed["check_name"],
                "file": _repo_path(failed.get("repo_file_path") or failed["file_path"]),
                "resource": failed["resource"], "lines": failed.get("file_line_range"),
            })
    frameworks = sorted({r.get("check_type") for r in reports})
    print(f"checkov {frameworks}: {passed} checks passed, {len(findings)} failed before skips")
    if {"dockerfile", "kubernetes", "ansible"} - set(frameworks):
        sys.exit(f"checkov ran only {frameworks}: a framework found no files (paths moved?)")
    return findings


def _repo_path(path: str) -> str:
    # repo_file_path is relative to the repository, except that a relative -d root is repeated.
    path = path.lstrip("/")
    marker = "build/security/chart/"
    return marker + path.rsplit(marker, 1)[1] if marker in path else path


def hadolint_findings() -> list[dict]:
    dockerfiles = sorted(str(p.relative_to(REPO)) for p in (REPO / "compose" / "images").glob("*/Dockerfile"))
    proc = subprocess.run([str(SCANNERS / "hadolint"), "--no-color", "-f", "json", *dockerfiles],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode not in (0, 1) or not proc.stdout.startswith("["):  # 1 = findings
        sys.exit(f"hadolint failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    findings = [{"tool": "hadolint", "check": item["code"], "name": f"{item['level']}: {item['message']}",
                 "file": item["file"], "resource": f"line {item['line']}", "lines": [item["line"]]}
                for item in json.loads(proc.stdout or "[]")]
    print(f"hadolint: {len(dockerfiles)} Dockerfiles, {len(findings)} findings before skips")
    return findings


def load_skips() -> list[dict]:
    skips = yaml.safe_load(SKIPS.read_text()) or []
    problems = []
    for i, skip in enumerate(skips):
        missing = {"check", "where", "why"} - set(skip)
        if missing or not str(skip.get("why", "")).strip():
            problems.append(f"skip #{i + 1} ({skip.get('check')}): needs check, where and a non-empty why")
    if problems:
        sys.exit("security/scan-skips.yaml:\n  " + "\n  ".join(problems))
    return skips


def matches(skip: dict, finding: dict) -> bool:
    subject = f"{finding['file']}::{finding['resource']}"
    return skip["check"] == finding["check"] and any(fnmatch.fnmatchcase(subject, w) for w in skip["where"])


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    chart_dir = render_chart()
    findings = checkov_findings(chart_dir) + hadolint_findings()
    skips = load_skips()
    used = [0] * len(skips)
    remaining = []
    for finding in findings:
        hit = next((i for i, s in enumerate(skips) if matches(s, finding)), None)
        if hit is None:
            remaining.append(finding)
        else:
            used[hit] += 1
    (OUT / "findings.json").write_text(json.dumps(findings, indent=1))
    for skip, count in zip(skips, used):
        print(f"  skipped {count:3d} x {skip['check']}: {skip['why']}")
    stale = [s for s, count in zip(skips, used) if count == 0]
    for finding in remaining:
        lines = finding["lines"]
        print(f"FAILED {finding['tool']} {finding['check']} {finding['name']}\n"
              f"       {finding['file']}{':' + '-'.join(map(str, lines)) if lines else ''} ({finding['resource']})")
    for skip in stale:
        print(f"STALE SKIP {skip['check']} {skip['where']}: matches no finding any more; delete it")
    if remaining or stale:
        print(f"security-scan: {len(remaining)} failed check(s), {len(stale)} stale skip(s)")
        return 1
    print(f"security-scan: no failed checks ({sum(used)} findings skipped by {len(skips)} reviewed skips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
