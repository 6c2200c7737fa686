"""`make release` against a real registry: every image the stack runs and the chart are pushed, the
record's digests are what the registry serves (pulled back into an empty store, and by docker after its
tags are gone), the chart installs from oci://, and a record that lies (tampered digest, missing image,
other image, moved tag) fails the check."""
import copy
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, verify

# Required values of the chart with an external database and broker (as `make chart-lint` passes).
CHART_VALUES = ["--set", "config.env.DJANGO_ALLOWED_HOSTS=app.example.com",
                "--set", "database.url=postgres://u:p@db:5432/app", "--set", "broker.url=redis://:p@redis:6379/0",
                "--set", "workers.keda.redis.address=redis:6379"]


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def test_every_image_the_stack_runs_is_in_the_record(release):
    built = re.findall(r"^[A-Z0-9_]+_IMAGE=(\S+)$", (ROOT / "build" / "compose-images.env").read_text(), re.M)
    assert sorted(i["built"] for i in release["images"]) == sorted(built)
    assert {"app", "proxy", "postgres", "redis", "rabbitmq", "backup"} <= {i["name"] for i in release["images"]}
    for image in release["images"]:
        assert image["image"] == f"{release['registry']}/{image['name']}:{release['version']}"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])
    assert release["install"] in release["output"]  # what `make release` prints last
    assert release["install"].startswith(f"helm install django-celery oci://{release['registry']}/django-celery "
                                         f"--version {release['version']}")


def test_a_checkout_with_uncommitted_changes_is_refused(registry, tmp_path):
    untracked = ROOT / "release-dirty-probe.tmp"  # an untracked file is enough: git status lists it
    untracked.write_text("not committed\n")
    try:
        done = subprocess.run([sys.executable, str(ROOT / "scripts/release/publish.py"), f"{registry}/dirty",
                               "--out", str(tmp_path / "r.json")], capture_output=True, text=True,
                              env={k: v for k, v in os.environ.items() if k != "RELEASE_ALLOW_DIRTY"})
    finally:
        untracked.unlink()
    assert done.returncode != 0 and "uncommitted changes" in done.stderr
    assert not (tmp_path / "r.json").exists()


def test_registry_serves_what_the_record_says(release, tmp_path):
    done = verify(release, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(release['images'])} images and the chart match the record" in done.stdout


def tampered(digest: str) -> str:
    return digest[:-1] + ("0" if digest[-1] != "0" else "1")


@pytest.mark.parametrize("lie", ["image digest", "chart digest", "image ID", "missing image", "moved tag"])
def test_a_record_that_lies_fails(release, tmp_path, lie):
    record = copy.deepcopy(release)
    app = next(i for i in record["images"] if i["name"] == "app")
    proxy = next(i for i in record["images"] if i["name"] == "proxy")
    if lie == "image digest":
        app["digest"], expected = tampered(app["digest"]), f"{app['image']}: tag {record['version']} resolves to"
    elif lie == "chart digest":
        record["chart"]["digest"], expected = tampered(record["chart"]["digest"]), "chart oci://"
    elif lie == "image ID":
        app["id"], expected = proxy["id"], f"{app['image']}: its config"
    elif lie == "missing image":
        ghost = {**app, "name": "ghost", "image": f"{record['registry']}/ghost:{record['version']}"}
        record["images"].append(ghost)
        expected = f"{ghost['image']}: HTTP Error 404"
    else:  # the app's tag in another repository points at another image: same record digest, other content
        moved = f"{record['registry'].rsplit('/', 1)[0]}/moved/app:{record['version']}"
        docker("tag", proxy["built"], moved)
        docker("push", moved)
        app["image"], expected = moved, f"{moved}: tag {record['version']} resolves to {proxy['digest']}"
    done = verify(record, tmp_path)
    assert done.returncode != 0
    assert expected in done.stderr, done.stderr


def test_docker_pulls_every_image_back_by_digest(release):
    for image in release["images"]:
        # Only the registry's name for it goes; the build's own tags stay (other suites use them).
        docker("image", "rm", image["image"])
        assert image["image"] not in docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split()
        by_digest = f"{image['image'].rsplit(':', 1)[0]}@{image['digest']}"
        docker("pull", "-q", by_digest)
        assert docker("image", "inspect", "--format", "{{.Id}}", by_digest) == image["id"]


def test_chart_installs_from_oci_with_the_published_images(release, helm, tmp_path):
    chart = release["chart"]
    shown = subprocess.run([helm, "show", "chart", chart["ref"], "--version", chart["version"], "--plain-http"],
                           check=True, capture_output=True, text=True).stdout
    assert f"\nversion: {chart['version']}\n" in f"\n{shown}"
    rendered = subprocess.run([helm, "template", "django-celery", chart["ref"], "--version", chart["version"],
                               "--plain-http", *CHART_VALUES], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    # Helm names what it pulled: the recorded digest, so the install used the published chart itself.
    assert f"Digest: {chart['digest']}" in rendered.stderr
    images = set(re.findall(r"^\s+image: \"?([^\"\s]+)\"?$", rendered.stdout, re.M))
    app = next(i for i in release["images"] if i["name"] == "app")
    assert images == {f"{release['registry']}/app@{app['digest']}"}  # the published chart pins the app image
