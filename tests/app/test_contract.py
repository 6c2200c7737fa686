"""The configuration contract (deploykit.contract): declarations parsed and refused naming the key,
layered with the project's file, read typed by Env.value, rendered deterministically, and the drift check
failing on a hand-edited generated file. Every variable the settings, gunicorn and the start scripts read is
declared."""

import re
import runpy
import shutil
import subprocess
import sys

import pytest
import yaml
from app_services import APP, REPO
from test_app_settings import PRODUCTION, load_settings

from deploykit import contract
from deploykit.contract import ContractError, render
from deploykit.config.env import Env
from deploykit.ops.logging import VALID_LEVELS

PROJECT = APP / "contract.toml"
START_SCRIPTS = sorted((REPO / "deploykit" / "bin").glob("deploykit-*"))


def declare(tmp_path, body: str, name: str = "extra.toml"):
    path = tmp_path / name
    path.write_text(body)
    return path


def var(name="DEMO_KNOB", **fields) -> str:
    fields = {"type": "int", "default": 5, "owner": "app", "section": "Demo", "doc": "A demo knob.", **fields}
    lines = [f'name = "{name}"'] + [f"{k} = {v!r}".replace("'", '"') if not isinstance(v, bool)
                                     else f"{k} = {str(v).lower()}" for k, v in fields.items()]
    return "[[variable]]\n" + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def full():
    return contract.load(project=PROJECT)


# --- parsing ----------------------------------------------------------------------------------------
def test_the_contract_declares_every_variable_once_with_owner_and_doc(full):
    assert len(full) >= 60
    for v in full.values():
        assert v.owner in contract.OWNERS and v.doc and "\n" not in v.doc, v.name
    assert {v.owner for v in full.values() if v.source == str(PROJECT)} == {"app"}


# deploykit-owned names outside DEPLOYKIT_*, each for a reason (docs/configuration.md, "Whose name is whose"):
# Django's createsuperuser reads DJANGO_SUPERUSER_<FIELD>; LOG_LEVEL/LOG_FORMAT are the conventional names
# every process (and a log shipper's operator) expects.
NOT_DEPLOYKIT_PREFIXED = {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD",
                          "LOG_LEVEL", "LOG_FORMAT"}


def test_names_say_whose_knob_it_is(full):
    """The blueprint's own knobs are DEPLOYKIT_*, and a DEPLOYKIT_* name is the blueprint's: nothing in
    Celery's namespace (or none) that Celery does not read."""
    for v in full.values():
        if v.owner == "deploykit":
            assert v.name.startswith("DEPLOYKIT_") or v.name in NOT_DEPLOYKIT_PREFIXED, v.name
        else:
            assert not v.name.startswith("DEPLOYKIT_"), v.name


@pytest.mark.parametrize("fields,message", [
    ({"default": "five"}, "default 'five' is not of type int"),
    ({"default": 0, "min": 1}, "default must be at least 1, got 0"),
    ({"default": 9, "max": 8}, "default must be at most 8, got 9"),
    ({"type": "enum", "default": "c", "choices": ["a", "b"]}, "default must be 'a' or 'b', got 'c'"),
    ({"type": "enum", "default": "a"}, "an enum needs choices"),
    ({"type": "bytes"}, "type 'bytes' is not one of"),
    ({"owner": "ops"}, "owner 'ops' is not one of"),
    ({"doc": ""}, "doc is missing"),
    ({"colour": "red"}, "unknown fields ['colour']"),
    ({"type": "str", "default": "x", "min": 1}, "min/max apply to int and float only"),
])
def test_a_malformed_declaration_is_refused_naming_the_variable(tmp_path, fields, message):
    with pytest.raises(ContractError) as refused:
        contract.parse_file(declare(tmp_path, var(**fields)))
    assert "DEMO_KNOB" in str(refused.value) and message in str(refused.value)


def test_an_invalid_name_is_refused(tmp_path):
    with pytest.raises(ContractError, match="invalid name 'demo-knob'"):
        contract.parse_file(declare(tmp_path, var("demo-knob")))


def test_a_name_declared_twice_in_one_file_is_refused(tmp_path):
    with pytest.raises(ContractError, match="DEMO_KNOB is declared twice"):
        contract.load(project=declare(tmp_path, var() + var()))


def test_a_project_redeclaring_a_deploykit_variable_is_refused(tmp_path):
    with pytest.raises(ContractError) as refused:
        contract.load(project=declare(tmp_path, var("LOG_LEVEL", type="str", default="INFO")))
    assert "LOG_LEVEL is declared twice" in str(refused.value)
    assert "deploykit.toml" in str(refused.value) and "extra.toml" in str(refused.value)


def test_the_project_layer_adds_its_variables_after_deploykits(tmp_path):
    layered = contract.load(project=declare(tmp_path, var(min=1, max=10)))
    assert list(layered)[-1] == "DEMO_KNOB" and len(layered) == len(contract.load()) + 1
    env = Env({"DEMO_KNOB": "7"}, contract=layered)
    assert env.value("DEMO_KNOB") == 7 and not env.errors


# --- reading ----------------------------------------------------------------------------------------
def test_value_gives_the_declared_default_typed(full):
    env = Env({}, contract=full)
    assert env.value("CELERY_TASK_TIME_LIMIT") == 300 and env.value("DEPLOYKIT_BROKER_TIMEOUT") == 10.0
    assert env.value("LOG_FORMAT") == "text" and env.value("DJANGO_CSRF_TRUSTED_ORIGINS") == []
    assert env.value("DJANGO_SECURE_SSL_REDIRECT") is True  # production mode
    assert Env({"DJANGO_DEBUG": "true"}, contract=full).value("DJANGO_SECURE_HSTS_SECONDS") == 0  # debug_default


@pytest.mark.parametrize("name,raw,message", [
    ("GUNICORN_WORKERS", "0", "must be at least 1, got 0"),
    ("PORT", "70000", "must be at most 65535, got 70000"),
    ("GUNICORN_TIMEOUT", "soon", "must be an integer, got 'soon'"),
    ("LOG_FORMAT", "xml", "must be 'text' or 'json', got 'xml'"),
    ("CELERY_WORKER_POOL", "gevent", "must be one of prefork, threads, solo, got 'gevent'"),
])
def test_value_refuses_out_of_bounds_naming_the_variable(full, name, raw, message):
    env = Env({name: raw}, contract=full)
    assert env.value(name) == full[name].default
    assert env.errors == [f"{name} {message}"]


def test_value_of_an_undeclared_name_fails(full):
    with pytest.raises(KeyError, match="NOT_DECLARED is not declared"):
        Env({}, contract=full).value("NOT_DECLARED")


def test_enum_choices_agree_with_the_code_that_uses_them(full):
    assert full["LOG_LEVEL"].choices == VALID_LEVELS
    assert Env({"LOG_LEVEL": "debug"}, contract=full).value("LOG_LEVEL") == "DEBUG"


# --- what reads the environment declares it -----------------------------------------------------------
@pytest.mark.parametrize("extra", [{}, {"DEPLOYKIT_STORAGE_BACKEND": "s3", "DEPLOYKIT_STORAGE_S3_BUCKET": "b",
                                        "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID": "k", "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY": "s" * 20}])
def test_every_variable_the_settings_read_is_declared(monkeypatch, full, extra):
    """The settings' Env records each name it looks up (grep-free: what really ran)."""
    loaded = load_settings(monkeypatch, **PRODUCTION, **extra)
    read = loaded["env"].read
    assert len(read) > 40
    assert read <= set(full), sorted(read - set(full))


def test_every_variable_gunicorn_reads_is_declared(full):
    loaded = runpy.run_module("deploykit.ops.gunicorn_conf")
    assert loaded["env"].read <= set(full) and {"PORT", "GUNICORN_WORKERS"} <= loaded["env"].read
    assert loaded["workers"] == full["GUNICORN_WORKERS"].default


def test_start_scripts_read_only_declared_variables_with_the_declared_defaults(full):
    """`${NAME:-default}` in deploykit/bin: NAME declared, and a literal default equal to the contract's."""
    seen = set()
    for script in START_SCRIPTS:
        for name, default in re.findall(r"\$\{([A-Z][A-Z0-9_]*)(?::?-([^}$]*))?\}", script.read_text()):
            assert name in full, f"{script.name} reads {name}, which the contract does not declare"
            seen.add(name)
            declared = full[name].default
            declared = ",".join(declared) if isinstance(declared, list) else declared
            if default:  # an empty default means "unset" in the script, not a value
                assert default == str(declared), f"{script.name}: {name} defaults to {default!r}, contract {declared!r}"
    assert {"CELERY_WORKER_QUEUES", "FLOWER_PORT", "DEPLOYKIT_HEARTBEAT_MAX_AGE"} <= seen


# --- generated files ----------------------------------------------------------------------------------
def copy_generated(tmp_path):
    for relpath in render.GENERATORS:
        (tmp_path / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / relpath, tmp_path / relpath)
    return tmp_path


def test_rendering_is_deterministic_and_the_committed_files_are_current(full):
    first, second = render.render_all(full, REPO), render.render_all(full, REPO)
    assert first == second
    assert render.stale(full, REPO) == {}
    names = (REPO / render.ANSIBLE_NAMES).read_text().splitlines()
    assert [n[2:] for n in names if n.startswith("- ")] == list(full)


def test_check_fails_naming_a_hand_edited_generated_file(tmp_path, full):
    root = copy_generated(tmp_path)
    docs = root / render.DOCS
    docs.write_text(docs.read_text().replace("| `300` |", "| `600` |", 1))
    assert list(render.stale(full, root)) == [render.DOCS]
    result = subprocess.run([sys.executable, "-m", "deploykit.contract", "check", "--project", str(PROJECT),
                             "--root", str(root)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"STALE: {render.DOCS}" in result.stderr and "-| `CELERY_TASK_TIME_LIMIT` |" in result.stderr
    render.write(full, root)
    assert render.stale(full, root) == {}


def test_render_keeps_the_prose_and_refuses_a_missing_marker(tmp_path, full):
    root = copy_generated(tmp_path)
    docs = root / render.DOCS
    text = docs.read_text().replace("Development mode. Never on", "Hand-edited", 1)
    docs.write_text("Prose kept.\n" + text)
    rendered = render.render_all(full, root)[render.DOCS]
    assert rendered.startswith("Prose kept.\n") and "Hand-edited" not in rendered
    docs.write_text(text.replace("<!-- contract:table Flower -->", ""))
    with pytest.raises(render.StaleError, match="'Flower'"):
        render.render_all(full, root)


def test_env_example_lists_the_declared_example_values(full):
    text = (REPO / render.ENV_EXAMPLE).read_text()
    for v in full.values():
        if v.env_example is not None:
            assert f"\n{v.name}={v.env_example}\n" in text, v.name


# --- Compose's app environment ------------------------------------------------------------------------
# compose.yaml's x-app-env entries that are contract variables written by hand, outside the generated block
# (docs/configuration.md): derived from Compose's own variables, fixed, or the required secret.
COMPOSE_BY_HAND = {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DJANGO_CSRF_TRUSTED_ORIGINS", "DATABASE_URL",
                   "CELERY_BROKER_URL", "REDIS_URL", "MEDIA_ROOT"}


def x_app_env_keys(text: str) -> list[str]:
    """The keys of compose.yaml's x-app-env map in the order written (duplicates kept: YAML loaders drop them)."""
    body = text.split("\nx-app-env: &app-env\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^  ([A-Z][A-Z0-9_]*):", body, re.M)


def test_compose_app_env_is_the_generated_block_plus_the_derived_entries(full):
    text = (REPO / render.COMPOSE).read_text()
    keys = x_app_env_keys(text)
    block = [v.name for v in render.compose_variables(full)]
    assert len(keys) == len(set(keys)), "a name written twice in x-app-env"
    assert set(keys) == set(block) | COMPOSE_BY_HAND and not set(block) & COMPOSE_BY_HAND
    assert set(keys) <= set(full), "x-app-env sets a name the contract does not declare"
    env = yaml.safe_load(text)["x-app-env"]
    assert {name: env[name] for name in ("LOG_FORMAT", "CELERY_TASK_TIME_LIMIT", "DIGEST_RECIPIENTS", "EMAIL_URL")} == {
        "LOG_FORMAT": "${LOG_FORMAT:-json}", "CELERY_TASK_TIME_LIMIT": "${CELERY_TASK_TIME_LIMIT:-300}",
        "DIGEST_RECIPIENTS": "${DIGEST_RECIPIENTS:-}", "EMAIL_URL": "${EMAIL_URL:-consolemail://}"}
    assert all(env[name].startswith("${%s:-" % name) for name in block)


def test_compose_block_writes_each_default_as_the_environment_holds_it(tmp_path):
    layered = contract.load(project=declare(tmp_path, "\n".join([
        var("DEMO_LIST", type="list", default=["a", "b"], compose="set"),
        var("DEMO_BOOL", type="bool", default=True, compose="set"),
        var("DEMO_TEXT", type="str", default="a: b #c", compose="set"),
        var("DEMO_NUM", type="float", default=2.0, compose="set", compose_default=2.5),
        var("DEMO_UNPASSED", type="str", default="x"),
    ])))
    template = "x-app-env:\n  KEPT: by-hand\n  # >>> contract\n  STALE: 1\n  # <<< contract\n"
    env = yaml.safe_load(render.render_compose(layered, template))["x-app-env"]
    assert {k: v for k, v in env.items() if k.startswith("DEMO_") or k == "KEPT"} == {
        "KEPT": "by-hand", "DEMO_LIST": "${DEMO_LIST:-a,b}", "DEMO_BOOL": "${DEMO_BOOL:-true}",
        "DEMO_TEXT": "${DEMO_TEXT:-a: b #c}", "DEMO_NUM": "${DEMO_NUM:-2.5}"}
    assert "STALE" not in env and env["LOG_FORMAT"] == "${LOG_FORMAT:-json}"
    dollar = contract.load(project=declare(tmp_path, var("DEMO_DOLLAR", type="str", default="a$b", compose="set"),
                                           "dollar.toml"))
    with pytest.raises(render.StaleError, match="DEMO_DOLLAR"):
        render.render_compose(dollar, template)


@pytest.mark.parametrize("fields,message", [
    ({"compose": "maybe"}, "DEMO_KNOB: compose 'maybe' is not one of set"),
    ({"compose_default": 5}, 'DEMO_KNOB: compose_default needs compose = "set"'),
    ({"compose": "set", "compose_default": "five"}, "DEMO_KNOB: compose_default 'five' is not of type int"),
    ({"compose": "set", "compose_default": 0, "min": 1}, "DEMO_KNOB: compose_default must be at least 1, got 0"),
])
def test_compose_fields_are_checked_naming_the_variable(tmp_path, fields, message):
    with pytest.raises(ContractError, match=re.escape(message)):
        contract.parse_file(declare(tmp_path, var(**fields)))


def test_check_fails_naming_a_hand_edited_compose_block_and_keeps_the_hand_written_entries(tmp_path, full):
    root = copy_generated(tmp_path)
    compose = root / render.COMPOSE
    text = compose.read_text()
    compose.write_text(text.replace("MEDIA_ROOT: /var/lib/app/media", "MEDIA_ROOT: /srv/media", 1))
    assert render.stale(full, root) == {}  # outside the block: the file's own
    compose.write_text(text.replace("${CELERY_TASK_TIME_LIMIT:-300}", "${CELERY_TASK_TIME_LIMIT:-600}", 1))
    assert list(render.stale(full, root)) == [render.COMPOSE]
    result = subprocess.run([sys.executable, "-m", "deploykit.contract", "check", "--project", str(PROJECT),
                             "--root", str(root)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"STALE: {render.COMPOSE}" in result.stderr
    assert "-  CELERY_TASK_TIME_LIMIT: ${CELERY_TASK_TIME_LIMIT:-600}" in result.stderr
    render.write(full, root)
    assert render.stale(full, root) == {} and compose.read_text() == text
