"""What a supply chain reads from the release: a CycloneDX SBOM per image naming its real packages
(Debian's from the image's dpkg database, Python's from its venv), OCI labels on the pushed images, and
cosign signatures on every image, SBOM and the chart that verify against the run's key only."""
import json
import subprocess
import sys

from conftest import PASSWORD, RELEASE, copy_release, verify, verify_signatures

# Packages each image exists for: an SBOM without them is not that image's.
KNOWN = {
    "app": {"pkg:pypi/django", "pkg:pypi/celery", "pkg:deb/debian/python3.13", "pkg:deb/debian/libc6"},
    "proxy": {"pkg:deb/debian/caddy"},
    "postgres": {"pkg:deb/debian/postgresql-17"},
    "redis": {"pkg:deb/debian/redis-server"},
    "rabbitmq": {"pkg:deb/debian/rabbitmq-server"},
    "backup": {"pkg:deb/debian/postgresql-client-17", "pkg:deb/debian/gpg", "pkg:deb/debian/python3-boto3"},
}


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def test_every_image_has_an_sbom_of_its_own_packages(release):
    assert {i["name"] for i in release["images"]} == set(KNOWN)
    for image in release["images"]:
        bom = json.loads((release["path"].parent / image["sbom"]).read_text())
        assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
        subject = bom["metadata"]["component"]
        assert subject["type"] == "container" and image["digest"].split(":")[1] in subject["purl"]
        purls = {c.get("purl", "").split("@")[0].lower() for c in bom["components"]}
        assert KNOWN[image["name"]] <= purls, f"{image['name']}: {sorted(KNOWN[image['name']] - purls)} missing"
        assert len(bom["components"]) == image["sbom_components"] > 50
        debian = [c for c in bom["components"] if c.get("purl", "").startswith("pkg:deb/debian/")]
        assert all("distro=debian-13" in c["purl"] for c in debian)
    app = json.loads((release["path"].parent / "sbom" / "app.cdx.json").read_text())
    django = next(c for c in app["components"] if c["name"].lower() == "django")
    assert django["licenses"], "cyclonedx-py reads the licence from the installed metadata"


def test_the_pushed_images_carry_their_labels_and_an_unlabelled_one_fails(release, tmp_path):
    # verify-release.py reads the labels from the config blob the registry serves (it passes on the
    # release: test_registry_serves_what_the_record_says); an image without them must fail it.
    base = "blueprint/debian:trixie"
    unlabelled = f"{release['registry']}/unlabelled:{release['version']}"
    docker("tag", base, unlabelled)
    pushed = docker("push", unlabelled)
    digest = pushed.rsplit("digest: ", 1)[1].split()[0]
    record = {**release, "images": [{"name": "unlabelled", "image": unlabelled, "digest": digest,
                                     "id": docker("image", "inspect", "--format", "{{.Id}}", base)}]}
    done = verify(record, tmp_path)
    assert done.returncode != 0
    for key in ("version", "revision", "source", "licenses"):
        assert f"{unlabelled}: label org.opencontainers.image.{key} is missing" in done.stderr


def test_signatures_verify_with_the_release_key(release, cosign_keys, tmp_path):
    assert release["signed_with"] == "cosign.pub"
    done = verify_signatures(release, tmp_path, cosign_keys / "cosign.pub")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("verified ") == len(release["images"]) + 1  # and the chart
    assert done.stdout.count("and its SBOM") == len(release["images"])


def test_another_key_verifies_nothing(release, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run([str(RELEASE / "cosign" / "run.sh"), "generate-key-pair"], cwd=other, check=True,
                   capture_output=True, env={"PATH": "/usr/bin:/bin", "COSIGN_PASSWORD": PASSWORD})
    done = verify_signatures(release, tmp_path, other / "cosign.pub")
    assert done.returncode != 0
    assert done.stderr.count("cosign verify ") == len(release["images"]) + 1


def test_an_unsigned_image_and_a_changed_sbom_fail(release, cosign_keys, tmp_path):
    redis = next(i for i in release["images"] if i["name"] == "redis")
    app = next(i for i in release["images"] if i["name"] == "app")
    unsigned = f"{release['registry']}/unsigned/redis:{release['version']}"
    docker("tag", redis["built"], unsigned)
    docker("push", unsigned)
    record = copy_release({**release, "images": [{**redis, "image": unsigned}, app]}, tmp_path)
    sbom = record.parent / app["sbom"]
    bom = json.loads(sbom.read_text())
    sbom.write_text(json.dumps({**bom, "components": bom["components"][1:]}))  # one package less than attested
    done = subprocess.run([sys.executable, str(RELEASE / "cosign-release.py"), "verify", str(record),
                           "--key", str(cosign_keys / "cosign.pub")], capture_output=True, text=True)
    assert done.returncode != 0
    assert f"cosign verify {unsigned.rsplit(':', 1)[0]}@{redis['digest']}" in done.stderr
    assert "no attested SBOM equals app.cdx.json" in done.stderr
