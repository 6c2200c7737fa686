#!/usr/bin/env python3
"""Publish a release into an OCI registry: the images the stack runs, tagged with VERSION and pushed,
then the chart, packaged and pushed as an OCI artifact. Writes the release record (JSON: every image's
digest and image ID, the chart's digest, the install command). scripts/release/release.sh runs it first.

The images are the ones the last `make images` built: build/compose-images.env names them (the file
Compose reads, so the release ships exactly what the stack runs). Each goes to REGISTRY/<name>:VERSION,
<name> being the last part of its local repository (blueprint/app -> REGISTRY/app).
The packaged chart's default app image is REGISTRY/app pinned to its pushed digest (image.digest): the
published chart installs the very image published beside it without any --set, and signing the chart
signs that pin.

Usage: scripts/release/publish.py REGISTRY [--out build/release/VERSION/release.json]
       REGISTRY is host[:port]/namespace; a registry on 127.0.0.1 is reached over plain HTTP.
       A checkout with uncommitted changes is refused unless RELEASE_ALLOW_DIRTY=1 (the record says so).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "django-celery"
IMAGES_ENV = ROOT / "build" / "compose-images.env"
# The lines of values.yaml the published chart changes: the app image's repository and digest.
APP_IMAGE_LINES = {
    "repository": re.compile(r"^(  repository: )blueprint/app$", re.M),
    "digest": re.compile(r'^(  digest: )""$', re.M),
}


def run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ERROR: {' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def plain_http(registry: str) -> list[str]:
    """helm speaks TLS unless told otherwise; dockerd already allows plain HTTP to 127.0.0.0/8."""
    return ["--plain-http"] if registry.startswith(("127.", "localhost")) else []


def built_images() -> list[str]:
    """Local references of the images the stack runs, from the last `make images`."""
    if not IMAGES_ENV.exists():
        sys.exit(f"ERROR: {IMAGES_ENV.relative_to(ROOT)} is missing: run `make images` first")
    refs = [line.split("=", 1)[1].strip() for line in IMAGES_ENV.read_text().splitlines()
            if re.match(r"^[A-Z0-9_]+_IMAGE=", line)]
    if not refs:
        sys.exit(f"ERROR: {IMAGES_ENV.relative_to(ROOT)} names no image")
    return refs


def push_image(local: str, registry: str, version: str) -> dict:
    name = local.split(":")[0].rsplit("/", 1)[-1]
    target = f"{registry}/{name}:{version}"
    run("docker", "tag", local, target)
    # The digest docker prints is the manifest's as the registry stored it: what a pull by digest gets.
    pushed = re.search(rf"^{re.escape(version)}: digest: (sha256:[0-9a-f]{{64}}) size: \d+$",
                       run("docker", "push", target), re.M)
    if not pushed:
        sys.exit(f"ERROR: no digest in the output of docker push {target}")
    image_id = run("docker", "image", "inspect", "--format", "{{.Id}}", local).strip()
    print(f"    pushed {target} {pushed.group(1)}")
    return {"name": name, "built": local, "image": target, "digest": pushed.group(1), "id": image_id}


def push_chart(registry: str, version: str, app_digest: str, workdir: Path) -> dict:
    chart = workdir / CHART_DIR.name
    shutil.copytree(CHART_DIR, chart)
    values = chart / "values.yaml"
    text = values.read_text()
    for key, value in (("repository", f"{registry}/app"), ("digest", f'"{app_digest}"')):
        text, count = APP_IMAGE_LINES[key].subn(rf"\g<1>{value}", text)
        if count != 1:
            sys.exit(f"ERROR: values.yaml no longer has the image.{key} line the release rewrites")
    values.write_text(text)
    run("helm", "package", str(chart), "--destination", str(workdir))
    package = workdir / f"{CHART_DIR.name}-{version}.tgz"
    out = run("helm", "push", str(package), f"oci://{registry}", *plain_http(registry))
    digest = re.search(r"^Digest: (sha256:[0-9a-f]{64})$", out, re.M)
    if not digest:
        sys.exit(f"ERROR: no digest in the output of helm push:\n{out}")
    ref = f"oci://{registry}/{CHART_DIR.name}"
    print(f"    pushed {ref}:{version} {digest.group(1)}")
    return {"name": CHART_DIR.name, "ref": ref, "version": version, "digest": digest.group(1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("registry", help="host[:port]/namespace")
    parser.add_argument("--out", type=Path, help="the release record (default build/release/VERSION/release.json)")
    args = parser.parse_args()
    registry = args.registry.rstrip("/")
    if "/" not in registry or "://" in registry:
        sys.exit(f"ERROR: REGISTRY must be host[:port]/namespace without a scheme (got '{args.registry}')")
    version = (ROOT / "VERSION").read_text().strip()
    # The images' revision label and the record name HEAD: uncommitted changes would ship unnamed.
    dirty = bool(run("git", "-C", str(ROOT), "status", "--porcelain").strip())
    if dirty and os.environ.get("RELEASE_ALLOW_DIRTY") != "1":
        sys.exit("ERROR: the checkout has uncommitted changes: commit them (or RELEASE_ALLOW_DIRTY=1 for a test release)")
    out = args.out or ROOT / "build" / "release" / version / "release.json"
    print(f"==> publishing release {version} to {registry}")
    images = [push_image(local, registry, version) for local in built_images()]
    with tempfile.TemporaryDirectory() as tmp:
        app = next((i for i in images if i["name"] == "app"), None)
        if not app:
            sys.exit(f"ERROR: {IMAGES_ENV.relative_to(ROOT)} names no app image")
        chart = push_chart(registry, version, app["digest"], Path(tmp))
    install = f"helm install django-celery {chart['ref']} --version {version}{''.join(' ' + f for f in plain_http(registry))}"
    record = {
        "version": version,
        "revision": run("git", "-C", str(ROOT), "rev-parse", "HEAD").strip(),
        "dirty": dirty,
        "registry": registry,
        "images": images,
        "chart": chart,
        "install": install,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"==> release record: {out}")


if __name__ == "__main__":
    main()
