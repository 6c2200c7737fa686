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
    for name in OVERLAYS:
        env = root / "overlays" / name / "secrets.env"
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
