"""The built app image (`make images`: APP_IMAGE in build/compose-images.env) carries no secrets in its
layers, history or labels, and its containers, started from the Compose service definitions, run as a
non-root user with no capabilities and a read-only root filesystem. Nothing is built here."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile

import pytest

from seclib import APP_SERVICES, REPO, SECRET_NAMES, clean_env, compose_cmd, generate_env_file, images_env, run

pytestmark = pytest.mark.docker

# Values that are secrets wherever they appear.
SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),                                    # AWS access key id
    # URL with a password (not a documentation placeholder like user:password@ or a ${template})
    re.compile(r"\b(?:redis|amqp|postgres(?:ql)?)://[^:@/\s]*:(?!password@|[$<{])[^@/\s]{3,}@"),
    re.compile(r"\bsk_live_[0-9a-zA-Z]{10,}"),
    re.compile(r"\bgh[pousr]_[0-9A-Za-z]{30,}\b"),
]
# `NAME=value` with a non-empty value for a secret name (history lines, env, labels).
ASSIGNED_SECRET = re.compile(r"\b(" + "|".join(SECRET_NAMES) + r"|[A-Z_]*(?:PASSWORD|SECRET|TOKEN))=(?!\s|$|\"\"|'')(\S+)")
# Files that must never be in the image.
FORBIDDEN_FILES = re.compile(r"(^|/)(\.env|\.git|id_rsa|id_ed25519|\.netrc|\.pypirc|db\.sqlite3|credentials)$"
                             r"|(^|/)\.env\.[^/]*$|^app/media/.+")
# Text files scanned for secret values: the code (app, deploykit: installed in the venv's site-packages)
# and configuration (the rest of the venv holds third-party tests).
SCANNED_PREFIXES = ("app/", "etc/", "opt/venv/bin/")
SCANNED_PATTERN = re.compile(r"opt/venv/lib/python3[^/]*/site-packages/deploykit(-[^/]*\.dist-info)?/")


@pytest.fixture(scope="module")
def image() -> str:
    name = images_env().get("APP_IMAGE")
    assert name, "no build/compose-images.env: run `make images` first"
    assert run("docker", "image", "inspect", name).returncode == 0, f"{name} is not built (make images)"
    return name


@pytest.fixture(scope="module")
def config(image) -> dict:
    return json.loads(run("docker", "image", "inspect", image).stdout)[0]["Config"]


def test_history_has_no_secrets(image):
    history = run("docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert history.strip(), "empty history"
    for line in history.splitlines():
        for pattern in SECRET_PATTERNS:
            assert not pattern.search(line), f"secret-looking value in history: {line[:300]}"
        match = ASSIGNED_SECRET.search(line)
        assert not match, f"{match.group(1)} is given a value in a build step: {line[:300]}"


def test_env_and_labels_have_no_secrets(config):
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    leaked = sorted(set(env) & set(SECRET_NAMES)) + sorted(
        n for n in env if re.search(r"PASSWORD|SECRET|TOKEN", n))
    assert not leaked, f"secret variables baked into the image: {leaked}"
    for key, value in (config.get("Labels") or {}).items():
        text = f"{key}={value}"
        assert not any(p.search(text) for p in SECRET_PATTERNS), f"secret-looking label {text}"
        assert not re.search(r"password|secret|token", key, re.I), f"label {key} names a secret"


def test_runs_as_a_numeric_non_root_user(config):
    user = (config.get("User") or "").split(":")[0]
    assert user.isdigit() and int(user) != 0, f"image USER is {user!r} (want a numeric non-root uid)"


def test_layers_hold_no_secret_files_or_values(image, tmp_path):
    archive = tmp_path / "image.tar"
    subprocess.run(["docker", "save", "-o", str(archive), image], check=True, timeout=300)
    findings, files = [], 0
    with tarfile.open(archive) as outer:
        layers = [m for m in outer.getmembers() if m.name.endswith("layer.tar") or m.name.startswith("blobs/")]
        assert layers, "no layers in docker save output"
        for member in layers:
            blob = outer.extractfile(member)
            if blob is None:
                continue
            try:
                layer = tarfile.open(fileobj=io.BytesIO(blob.read()))
            except tarfile.ReadError:  # a config/manifest blob, not a layer
                continue
            for entry in layer:
                files += 1
                path = entry.name.lstrip("./")
                if FORBIDDEN_FILES.search(path):
                    findings.append(f"{member.name}: forbidden file {path}")
                if entry.isfile() and (path.startswith(SCANNED_PREFIXES) or SCANNED_PATTERN.match(path)) and entry.size < 2_000_000:
                    text = layer.extractfile(entry).read().decode("utf-8", "replace")
                    for pattern in SECRET_PATTERNS:
                        if pattern.search(text):
                            findings.append(f"{member.name}: {path} matches {pattern.pattern}")
    print(f"scanned {files} layer entries of {image}")
    assert files > 1000, "suspiciously few files: did the layer format change?"
    assert not findings, "\n".join(findings)


@pytest.fixture(scope="module")
def env_file(tmp_path_factory):
    path = generate_env_file(tmp_path_factory.mktemp("image") / "image.env")
    yield path
    # `run --rm` removes the containers; the project's network and media volume go here.
    run(*compose_cmd(path, project="sec-image"), "down", "-v", "--remove-orphans", env=clean_env())


PROBE = ("id -u; id -g; grep -E '^(CapPrm|CapEff|CapAmb|NoNewPrivs)' /proc/self/status; "
         "touch /probe-root 2>/dev/null && echo ROOTFS-WRITABLE || echo ROOTFS-READONLY; "
         "touch /tmp/probe && echo TMP-WRITABLE")


@pytest.mark.parametrize("service", [s for s in APP_SERVICES if s != "migrate"])
def test_service_container_is_unprivileged(service, image, env_file):
    """One-off container of the service as Compose defines it (user, caps, read_only, tmpfs), no deps."""
    result = run(*compose_cmd(env_file, project="sec-image"), "run", "--rm", "--no-deps", "-T",
                 "--entrypoint", "sh", service, "-c", PROBE, env=clean_env(), timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split()
    assert lines[0] != "0" and lines[1] != "0", f"{service} runs as uid/gid {lines[0]}/{lines[1]}"
    status = dict(re.findall(r"(Cap\w+|NoNewPrivs):\s+(\S+)", result.stdout))
    for cap in ("CapPrm", "CapEff", "CapAmb"):
        assert int(status[cap], 16) == 0, f"{service} holds capabilities: {cap}={status[cap]}"
    assert "ROOTFS-READONLY" in result.stdout, f"{service}: root filesystem is writable"
    assert "TMP-WRITABLE" in result.stdout, f"{service}: /tmp is not writable"
