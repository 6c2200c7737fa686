"""k8s/: the committed base equals a fresh render of the chart, holds no Secret, and both overlays
build with kustomize (generating their Secret) into valid objects; environment values files render."""
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .helm_template_generator import REPO_ROOT, render_chart, validate_objects

K8S = REPO_ROOT / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
# Projects of their own, each rendered from its Helm values file alone: k8s/examples/<name>/<name>.yaml.
EXAMPLES = sorted(p.name for p in (K8S / "examples").iterdir() if p.is_dir())


def test_base_has_not_drifted_from_chart():
    proc = subprocess.run([str(REPO_ROOT / "k8s" / "render-base.sh"), "check"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_base_holds_no_secret_and_is_valid():
    objects = [o for o in yaml.safe_load_all((K8S / "base" / "django-celery.yaml").read_text()) if o]
    assert not [o for o in objects if o["kind"] == "Secret"]
    validate_objects(objects)


@pytest.fixture(scope="module")
def overlay_tree(tmp_path_factory):
    """A copy of k8s/ where each overlay has a secrets.env (from its example when the real one is absent)."""
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, root)
    for env in [root / "overlays" / name / "secrets.env" for name in OVERLAYS] + [root / "examples" / name / "secrets.env" for name in EXAMPLES]:
        if not env.exists():
            shutil.copy(env.with_name("secrets.env.example"), env)
    return root


def kustomize_build(path: Path) -> list[dict]:
    proc = subprocess.run([str(REPO_ROOT / "k8s" / "kustomize-build.sh"), str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [o for o in yaml.safe_load_all(proc.stdout) if o]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_valid_objects_with_generated_secret(overlay_tree, overlay):
    objects = kustomize_build(overlay_tree / "overlays" / overlay)
    validate_objects(objects)
    secrets = [o for o in objects if o["kind"] == "Secret"]
    assert len(secrets) == 1 and secrets[0]["metadata"]["name"].startswith("django-celery-env-")
    generated = secrets[0]["metadata"]["name"]
    assert {o["metadata"].get("namespace") for o in objects} == {f"django-celery-{overlay}"}
    # The hash-suffixed name reaches the pods' secretKeyRefs and KEDA's TriggerAuthentication.
    refs = set()
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            for c in o["spec"]["template"]["spec"]["containers"]:
                refs |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "valueFrom" in e}
        if o["kind"] == "TriggerAuthentication":
            refs |= {r["name"] for r in o["spec"]["secretTargetRef"]}
    assert refs == {generated}


def test_overlays_have_no_committed_secrets():
    tracked = subprocess.run(["git", "ls-files", "k8s"], capture_output=True, text=True, cwd=REPO_ROOT).stdout.split()
    assert not [f for f in tracked if f.endswith("secrets.env")]


@pytest.mark.parametrize("environment", sorted(p.stem for p in (REPO_ROOT / "helm" / "environments").glob("*.yaml")))
def test_environment_values_render_valid(environment):
    values = yaml.safe_load((REPO_ROOT / "helm" / "environments" / f"{environment}.yaml").read_text())
    validate_objects(render_chart(values=values, base=False))


def test_a_project_example_is_rendered_from_its_values_file_alone():
    """k8s/examples/bookshop/bookshop.yaml is the chart rendered with examples/bookshop/deploy/values.yaml (the
    drift check above covers it): no Secret, valid objects, the bookshop's pools and queues."""
    assert EXAMPLES == ["bookshop"]
    objects = [o for o in yaml.safe_load_all((K8S / "examples" / "bookshop" / "bookshop.yaml").read_text()) if o]
    assert not [o for o in objects if o["kind"] == "Secret"]
    validate_objects(objects)
    queues = {o["metadata"]["name"]: {e["name"]: e.get("value") for e in o["spec"]["template"]["spec"]["containers"][0]["env"]}["CELERY_WORKER_QUEUES"]
              for o in objects if o["kind"] == "Deployment" and "-worker-" in o["metadata"]["name"]}
    assert queues == {"bookshop-django-celery-worker-main": "celery", "bookshop-django-celery-worker-emails": "emails"}


@pytest.mark.parametrize("example", EXAMPLES)
def test_project_example_builds_valid_objects_with_generated_secret(overlay_tree, example):
    objects = kustomize_build(overlay_tree / "examples" / example)
    validate_objects(objects)
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert secret["metadata"]["name"].startswith(f"{example}-env-")
    assert {o["metadata"].get("namespace") for o in objects} == {example}
    refs, consumed = set(), set()
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            spec = o["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []) + spec["containers"]:
                refs |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
                consumed |= {e["value"] for e in c.get("env", []) if e["name"] == "DEPLOYKIT_CONSUMED_QUEUES"}
        if o["kind"] == "TriggerAuthentication":
            refs |= {r["name"] for r in o["spec"]["secretTargetRef"]}
    assert refs == {secret["metadata"]["name"]}
    assert consumed == {"celery,emails"}
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-config"))
    assert config["data"]["DJANGO_SETTINGS_MODULE"] == "bookshop.settings.production"
