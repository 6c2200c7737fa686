#!/usr/bin/env python3
"""Check a published release against its record (scripts/release/publish.py's release.json), reading the
registry over the OCI distribution API into an empty OCI image layout, so nothing local can stand in:

- each image's tag resolves to the recorded digest; its manifest, fetched by that digest, hashes to it;
  every blob it names (config and layers) is downloaded and hashes to its descriptor's digest;
- the config's digest is the recorded image ID (the image docker built, not just "an image");
- the config carries the OCI labels a supply chain reads: version = the release version, revision =
  the recorded commit, source and licenses set;
- the chart's tag resolves to its recorded digest, its content layer hashes right, and the packaged
  Chart.yaml has the release version.
Exit 1 naming every mismatch. Loopback registries are read over plain HTTP, others over HTTPS (anonymous).

Usage: scripts/release/verify-release.py RELEASE_JSON [--store DIR]   (default: a temporary directory)
"""
import argparse
import hashlib
import io
import json
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
REQUIRED_LABELS = ["version", "revision", "source", "licenses"]
CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


class Registry:
    def __init__(self, host: str):
        scheme = "http" if host.startswith(("127.", "localhost")) else "https"
        self.base = f"{scheme}://{host}/v2"

    def get(self, path: str, accept: str = MANIFEST_TYPES, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}/{path}", method=method, headers={"Accept": accept})
        return urllib.request.urlopen(request, timeout=60)

    def manifest(self, repo: str, reference: str) -> bytes:
        with self.get(f"{repo}/manifests/{reference}") as response:
            return response.read()

    def tag_digest(self, repo: str, tag: str) -> str:
        with self.get(f"{repo}/manifests/{tag}", method="HEAD") as response:
            return response.headers["Docker-Content-Digest"]

    def blob(self, repo: str, digest: str, store: Path) -> Path:
        """Stream a blob into the store's blobs/sha256/ and check its hash on the way."""
        path = store / "blobs" / "sha256" / digest.split(":", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        with self.get(f"{repo}/blobs/{digest}", accept="*/*") as response, path.open("wb") as out:
            while chunk := response.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
        if f"sha256:{sha.hexdigest()}" != digest:
            raise ValueError(f"blob {digest} of {repo} hashes to sha256:{sha.hexdigest()}")
        return path


def split(reference: str) -> tuple[str, str, str]:
    """host/ns/name:tag -> (host, ns/name, tag)."""
    reference = reference.removeprefix("oci://")
    host, _, rest = reference.partition("/")
    repo, _, tag = rest.rpartition(":")
    return host, repo, tag


def fetch_manifest(registry: Registry, repo: str, tag: str, digest: str, store: Path) -> dict:
    tagged = registry.tag_digest(repo, tag)
    if tagged != digest:
        raise ValueError(f"tag {tag} resolves to {tagged}, not the recorded {digest}")
    body = registry.manifest(repo, digest)
    if f"sha256:{hashlib.sha256(body).hexdigest()}" != digest:
        raise ValueError(f"the manifest served for {digest} hashes to something else")
    (store / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (store / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(body)
    return json.loads(body)


def check_image(registry: Registry, image: dict, record: dict, store: Path) -> list[str]:
    _, repo, tag = split(image["image"])
    manifest = fetch_manifest(registry, repo, tag, image["digest"], store)
    config_digest = manifest["config"]["digest"]
    config = json.loads(registry.blob(repo, config_digest, store).read_bytes())
    for layer in manifest["layers"]:
        registry.blob(repo, layer["digest"], store)
    problems = []
    if config_digest != image["id"]:
        problems.append(f"its config {config_digest} is not the recorded image ID {image['id']}")
    labels = config.get("config", {}).get("Labels") or {}
    expected = {"version": record["version"], "revision": record["revision"]}
    for key in REQUIRED_LABELS:
        value = labels.get(f"org.opencontainers.image.{key}")
        if not value:
            problems.append(f"label org.opencontainers.image.{key} is missing")
        elif key in expected and value != expected[key]:
            problems.append(f"label org.opencontainers.image.{key} is {value}, not {expected[key]}")
    print(f"    {image['image']}@{image['digest']}: {len(manifest['layers'])} layers, "
          f"{sum(layer['size'] for layer in manifest['layers'])} bytes")
    return problems


def check_chart(registry: Registry, chart: dict, store: Path) -> list[str]:
    _, repo, _ = split(f"{chart['ref']}:{chart['version']}")
    manifest = fetch_manifest(registry, repo, chart["version"], chart["digest"], store)
    layers = [layer for layer in manifest["layers"] if layer["mediaType"] == CHART_LAYER]
    if len(layers) != 1:
        return [f"{len(layers)} chart content layers instead of 1"]
    package = registry.blob(repo, layers[0]["digest"], store).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(package)) as tar:
        chart_yaml = tar.extractfile(f"{chart['name']}/Chart.yaml").read().decode()
    if f"\nversion: {chart['version']}\n" not in f"\n{chart_yaml}":
        return [f"the packaged Chart.yaml does not say version: {chart['version']}"]
    print(f"    {chart['ref']}:{chart['version']}@{chart['digest']}: chart package {len(package)} bytes")
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path)
    parser.add_argument("--store", type=Path, help="the OCI layout to pull into (must not exist yet)")
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp) / "store"
        store.mkdir(parents=True)  # fails on an existing directory: the pull must start from nothing
        (store / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        registry = Registry(record["registry"].split("/", 1)[0])
        problems = []
        checks = [(image["image"], check_image, image, record) for image in record["images"]]
        checks.append((f"chart {record['chart']['ref']}", check_chart, record["chart"]))
        print(f"==> verifying release {record['version']} in {record['registry']}")
        for name, check, *check_args in checks:
            try:
                problems += [f"{name}: {p}" for p in check(registry, *check_args, store)]
            except (urllib.error.URLError, ValueError, KeyError) as exc:
                problems.append(f"{name}: {exc}")
    if problems:
        sys.exit("ERROR: the release does not match its record:\n  " + "\n  ".join(problems))
    print(f"==> {len(record['images'])} images and the chart match the record")


if __name__ == "__main__":
    main()
