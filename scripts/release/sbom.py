#!/usr/bin/env python3
"""Write a CycloneDX SBOM for every image of a release record (scripts/release/publish.py's release.json)
beside it, in sbom/<name>.cdx.json, and name each file in the record.

- Debian packages: from the image's own dpkg database (/var/lib/dpkg/status, copied out of a created,
  never started, container), as pkg:deb purls with the image's Debian version.
- Python packages: where the image has a virtualenv (/opt/venv, the app image), cyclonedx-py (PyPI,
  pinned in requirements/sbom.lock) run inside a throw-away container of that image against its venv:
  it reads the installed distributions' metadata (licences included) with the image's own Python.
- The SBOM's subject is the image as published: pkg:oci purl with the pushed digest.
Every SBOM is then validated against the CycloneDX 1.6 JSON schema by the same tool (strict).

Usage: scripts/release/sbom.py RELEASE_JSON
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
TOOL_LOCK = "requirements/sbom.lock"
TOOL_WHEELS = ROOT / "build" / "sbom-tool"
VENV = "/opt/venv"
SPEC_VERSION = "1.6"


def run(*cmd: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(cmd, input=stdin, capture_output=True)
    if done.returncode != 0:
        sys.exit(f"ERROR: {' '.join(cmd)} failed:\n{done.stderr.decode(errors='replace')}")
    return done.stdout


def files_of(image: str, *paths: str) -> dict[str, bytes]:
    """The named files of an image (missing ones left out), read without running it."""
    container = run("docker", "create", image).decode().strip()
    try:
        found = {}
        for path in paths:
            # -L: /etc/os-release and the venv's python are symlinks.
            done = subprocess.run(["docker", "cp", "-L", f"{container}:{path}", "-"], capture_output=True)
            if done.returncode == 0:
                with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
                    found[path] = tar.extractfile(tar.getmembers()[0]).read()
        return found
    finally:
        run("docker", "rm", container)


def dpkg_components(status: str, distro: str) -> list[dict]:
    components = []
    for stanza in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if fields.get("Status") != "install ok installed":
            continue
        purl = f"pkg:deb/debian/{fields['Package']}@{quote(fields['Version'])}?arch={fields['Architecture']}&distro={distro}"
        components.append({"type": "library", "bom-ref": purl, "name": fields["Package"],
                           "version": fields["Version"], "purl": purl})
    return components


def os_release(text: str) -> dict:
    return {k: v.strip('"') for k, v in (line.split("=", 1) for line in text.splitlines() if "=" in line)}


def tool_container(image: str, script: str, mounts: list[str] = ()) -> bytes:
    """Run `script` as root in a throw-away container of `image` with cyclonedx-py installed in /tmp/t
    from the wheelhouse (downloaded once with that image's Python by the project's wheelhouse script)."""
    env = {**os.environ, "REQUIREMENTS": TOOL_LOCK, "WHEELHOUSE": str(TOOL_WHEELS.relative_to(ROOT)), "PY_IMAGE": image}
    subprocess.run([str(ROOT / "compose/images/app/build-wheelhouse.sh")], env=env, check=True, stdout=sys.stderr)
    volumes = [arg for mount in (f"{TOOL_WHEELS}:/wh:ro", *mounts) for arg in ("-v", mount)]
    setup = "python3 -m venv /tmp/t && /tmp/t/bin/pip install -q --no-index --find-links /wh -r /requirements.txt"
    return run("docker", "run", "--rm", "-i", "--user", "0", "--network", "none", "--entrypoint", "sh", *volumes,
               "-v", f"{ROOT / TOOL_LOCK}:/requirements.txt:ro", image, "-c", f"{setup} >&2 && {script}")


def python_bom(image: str) -> dict:
    return json.loads(tool_container(image, f"/tmp/t/bin/cyclonedx-py environment --spec-version {SPEC_VERSION} "
                                            f"--output-reproducible {VENV}/bin/python"))


def image_bom(image: dict, version: str) -> dict:
    files = files_of(image["image"], "/var/lib/dpkg/status", "/etc/os-release", f"{VENV}/bin/python")
    release = os_release(files["/etc/os-release"].decode())
    distro = f"{release.get('ID', 'debian')}-{release.get('VERSION_ID', release.get('VERSION_CODENAME', 'unknown'))}"
    python = python_bom(image["image"]) if f"{VENV}/bin/python" in files else {}
    repository = image["image"].rsplit(":", 1)[0]
    subject = f"pkg:oci/{image['name']}@{quote(image['digest'])}?repository_url={quote(repository)}"
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "tools": python.get("metadata", {}).get("tools", {"components": []}),
            "component": {"type": "container", "bom-ref": subject, "name": repository, "version": version, "purl": subject},
        },
        "components": python.get("components", []) + dpkg_components(files["/var/lib/dpkg/status"].decode(), distro),
        "dependencies": python.get("dependencies", []),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path)
    args = parser.parse_args()
    args.record = args.record.resolve()  # docker mounts need absolute paths
    record = json.loads(args.record.read_text())
    out = args.record.parent / "sbom"
    out.mkdir(exist_ok=True)
    # The tool runs in the image that has the Python environment (the app's); it validates every SBOM.
    tool_image = next((i["image"] for i in record["images"] if i["name"] == "app"), None)
    for image in record["images"]:
        bom = image_bom(image, record["version"])
        path = out / f"{image['name']}.cdx.json"
        path.write_text(json.dumps(bom, indent=1) + "\n")
        image["sbom"] = str(path.relative_to(args.record.parent))
        image["sbom_components"] = len(bom["components"])
        print(f"    {path.name}: {len(bom['components'])} components")
    if tool_image:
        names = " ".join(f"/sbom/{i['name']}.cdx.json" for i in record["images"])
        tool_container(tool_image, f"""/tmp/t/bin/python - {names} <<'PY'
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
validator = JsonStrictValidator(SchemaVersion.from_version("{SPEC_VERSION}"))
for path in sys.argv[1:]:
    error = validator.validate_str(open(path).read())
    if error:
        sys.exit(f"{{path}}: not a valid CycloneDX {SPEC_VERSION} document: {{error}}")
PY""", [f"{out}:/sbom:ro"])
        print(f"    valid CycloneDX {SPEC_VERSION} (strict schema): {len(record['images'])} SBOMs")
    args.record.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
