"""A new setting reaches a running app process on Compose (issue #17 goal 6): one declaration added to a copy
of the contract, rendered into a copy of compose/compose.yaml as `make contract-render` does, and one
container of the app image started from that file's web service (`docker compose run --rm --no-deps`)
reads it with the reader the settings use (deploykit.config.env.Env.value, over the same contract): the
value set in the env file arrives. From the committed compose.yaml, not regenerated, it does not. One
container per case, nothing built (the image of `make images`), no other service started."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from deploykit import contract
from deploykit.contract import render
from seclib import REPO, clean_env, generate_env_file, run

pytestmark = pytest.mark.docker

NAME = "DEPLOYKIT_DUMMY_SETTING"
# What the process reads: the declaration's type and default.
DECLARATION = f'''
[[variable]]
name = "{NAME}"
type = "str"
default = "from-the-contract"
owner = "deploykit"
section = "Celery"
doc = "A dummy every app process on Compose gets."
'''
# What the renderer reads as well: Compose passes it (the block of compose.yaml's x-app-env).
DUMMY = DECLARATION + 'compose = "set"\n'
# Run in the container: deploykit's contract plus the dummy's declaration (written to the container's /tmp:
# the root filesystem is read-only; without the compose field, which the reader does not need and an image
# built before that field existed would refuse), and the value Env.value reads from the process's environment.
READER = f'''
import os, pathlib
from deploykit import contract
from deploykit.config.env import Env
path = pathlib.Path("/tmp/dummy.toml")
path.write_text({DECLARATION!r})
env = Env(contract=contract.load(project=path))
print("VALUE=" + env.value({NAME!r}), "IN_ENVIRON=" + str({NAME!r} in os.environ), "ERRORS=" + str(env.errors))
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An env file with fresh secrets and the dummy's value, the images of `make images`, a project name."""
    tmp = tmp_path_factory.mktemp("compose-contract")
    env_file = generate_env_file(tmp / "test.env")
    with env_file.open("a") as f:
        f.write(f"{NAME}=set-in-the-env-file\n")
    files = ["--env-file", str(env_file)]
    images = REPO / "build" / "compose-images.env"
    if images.exists():
        files += ["--env-file", str(images)]
    project = f"sec-contract-{uuid.uuid4().hex[:8]}"
    yield tmp, files, project
    # `run` created the project's network and the web service's volume: nothing else to remove.
    run("docker", "compose", "-p", project, "-f", "compose/compose.yaml", *files, "down", "-v", "--remove-orphans",
        env=environ(), timeout=120)


def environ() -> dict[str, str]:
    return {k: v for k, v in clean_env().items() if not k.startswith(("DEPLOYKIT_", "PROJECT_"))}


def read_in_web(compose_file: Path, files: list[str], project: str) -> str:
    result = run("docker", "compose", "-p", project, "-f", str(compose_file), *files,
                 "run", "--rm", "--no-deps", "-T", "web", "python", "-c", READER, env=environ(), timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_a_declared_and_regenerated_setting_reaches_a_running_process(stack):
    tmp, files, project = stack
    project_contract = tmp / "contract.toml"
    project_contract.write_text((REPO / "app" / "contract.toml").read_text() + DUMMY)
    compose_file = tmp / render.COMPOSE
    compose_file.parent.mkdir(parents=True)
    committed = (REPO / render.COMPOSE).read_text()
    compose_file.write_text(render.render_compose(contract.load(project=project_contract), committed))
    assert f"{NAME}: ${{{NAME}:-from-the-contract}}" in compose_file.read_text()
    assert read_in_web(compose_file, files, project) == "VALUE=set-in-the-env-file IN_ENVIRON=True ERRORS=[]"


def test_without_regeneration_the_setting_does_not_arrive(stack):
    _, files, project = stack
    assert NAME not in (REPO / render.COMPOSE).read_text()
    assert read_in_web(REPO / render.COMPOSE, files, project) == "VALUE=from-the-contract IN_ENVIRON=False ERRORS=[]"
