"""The chart's configuration comes from the contract: config.env (values.yaml's generated block and its
schema) holds the contract's non-secret names, the ConfigMap renders them with one loop plus the few
names the chart computes, helm refuses unknown names and out-of-bounds values naming them, and
`make contract-check` fails when the chart's generated block was edited by hand."""
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

from deploykit import contract
from deploykit.contract import render

from .helm_template_generator import BASE_VALUES, CHART_DIR, REPO_ROOT, HelmFailed, helm_binary, render_chart

PROJECT = REPO_ROOT / "app" / "contract.toml"
CONFIGMAP = ["templates/config/configmap.yaml"]
# Set by the ConfigMap template from the chart's other values (each also used by another object of the
# chart), documented in the chart README: the contract marks them chart = "computed".
COMPUTED_IN_CONFIGMAP = {"DJANGO_DEBUG", "DATABASE_CONN_MAX_AGE", "DEPLOYKIT_HEARTBEAT_FILE", "FLOWER_PORT",
                         "FLOWER_URL_PREFIX", "DEPLOYKIT_STORAGE_BACKEND", "MEDIA_ROOT", "PORT", "GUNICORN_WORKERS",
                         "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "DEPLOYKIT_WEB_DRAIN_SECONDS"}
S3_COMPUTED = {"DEPLOYKIT_STORAGE_S3_ENDPOINT_URL", "DEPLOYKIT_STORAGE_S3_PUBLIC_ENDPOINT_URL",
               "DEPLOYKIT_STORAGE_S3_BUCKET", "DEPLOYKIT_STORAGE_S3_REGION"}


@pytest.fixture(scope="module")
def full():
    return contract.load(project=PROJECT)


def copy_generated(root):
    for relpath in render.GENERATORS:
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / relpath, root / relpath)


def configmap(values=None):
    return render_chart(values=values, show_only=CONFIGMAP)[0]["data"]


def test_configmap_holds_the_contracts_set_names_and_the_computed_ones(full):
    chart_set = {v.name for v in full.values() if v.chart == "set"}
    data = configmap()
    assert set(data) == chart_set | COMPUTED_IN_CONFIGMAP
    assert all(full[name].chart == "computed" and not full[name].secret for name in COMPUTED_IN_CONFIGMAP | S3_COMPUTED)
    s3 = configmap({"storage": {"backend": "s3", "s3": {"bucket": "b", "accessKeyId": "k", "secretAccessKey": "s"}}})
    assert set(s3) == chart_set | COMPUTED_IN_CONFIGMAP | S3_COMPUTED
    assert not {name for name in s3 if full[name].secret}, "a secret in the ConfigMap"


def test_values_block_and_schema_list_exactly_the_settable_names(full):
    settable = [v.name for v in render.chart_variables(full)]
    values = yaml.safe_load((REPO_ROOT / render.CHART_VALUES).read_text())
    schema = yaml.safe_load((REPO_ROOT / render.CHART_SCHEMA).read_text())
    env_schema = schema["properties"]["config"]["properties"]["env"]
    assert list(env_schema["properties"]) == settable and env_schema["additionalProperties"] is False
    assert set(values["config"]["env"]) == {v.name for v in full.values() if v.chart == "set"}
    assert not {v.name for v in full.values() if v.secret or v.chart == "computed"} & set(settable)


def test_a_value_set_under_config_env_shows_in_the_configmap():
    data = configmap({"config": {"env": {"LOG_LEVEL": "DEBUG", "DEPLOYKIT_LEASE_TTL": 45,
                                         "DEPLOYKIT_BROKER_TIMEOUT": 2.5, "DJANGO_SECURE_HSTS_PRELOAD": False}}})
    assert (data["LOG_LEVEL"], data["DEPLOYKIT_LEASE_TTL"]) == ("DEBUG", "45")
    assert (data["DEPLOYKIT_BROKER_TIMEOUT"], data["DJANGO_SECURE_HSTS_PRELOAD"]) == ("2.5", "false")
    assert "DEPLOYKIT_RECOVERY_INTERVAL" not in data  # unset: the app's default applies


def test_set_flag_reaches_the_configmap():
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(BASE_VALUES, f)
    try:
        out = subprocess.run([helm_binary(), "template", "release", str(CHART_DIR),
                              "--values", f.name, "--show-only", CONFIGMAP[0],
                              "--set", "config.env.CELERY_WORKER_PREFETCH_MULTIPLIER=4",
                              "--set", "config.env.DEPLOYKIT_BEAT_TICK_SECONDS=20"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    data = yaml.safe_load(out)["data"]
    assert (data["CELERY_WORKER_PREFETCH_MULTIPLIER"], data["DEPLOYKIT_BEAT_TICK_SECONDS"]) == ("4", "20")


@pytest.mark.parametrize("env, message", [
    ({"CELERY_TASK_TIMELIMIT": 300}, r"/config/env.*additional properties 'CELERY_TASK_TIMELIMIT' not allowed"),
    # Secrets belong in the Secret, names the chart computes on their component's key.
    ({"DATABASE_URL": "postgres://u:p@db/app"}, r"additional properties 'DATABASE_URL' not allowed"),
    ({"PORT": 9000}, r"additional properties 'PORT' not allowed"),
    ({"CELERY_TASK_TIME_LIMIT": -1}, r"/config/env/CELERY_TASK_TIME_LIMIT.*minimum"),
    ({"DEPLOYKIT_LEASE_TTL": 2}, r"/config/env/DEPLOYKIT_LEASE_TTL.*minimum"),
    ({"UPLOAD_MAX_BYTES": "big"}, r"/config/env/UPLOAD_MAX_BYTES.*got string, want integer"),
    ({"LOG_FORMAT": "xml"}, r"/config/env/LOG_FORMAT.*value must be one of"),
    ({"DJANGO_ADMIN_URL": "/admin"}, r"/config/env/DJANGO_ADMIN_URL.*does not match pattern"),
    ({"DEPLOYKIT_API_THROTTLE_RATE": "lots"}, r"/config/env/DEPLOYKIT_API_THROTTLE_RATE.*does not match pattern"),
])
def test_schema_refuses_unknown_names_and_bound_violations_naming_them(env, message):
    with pytest.raises(HelmFailed, match=message):
        configmap({"config": {"env": env}})


def test_result_backend_is_a_secret():
    objects = render_chart(values={"secrets": {"resultBackend": "redis://:pw@results.example.com:6379/1"}})
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-config"))
    secret = next(o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "release-django-celery")
    assert "CELERY_RESULT_BACKEND" not in config["data"] and "CELERY_RESULT_BACKEND" in secret["data"]


def test_contract_check_fails_on_a_hand_edited_chart_block(tmp_path, full):
    copy_generated(tmp_path)
    values = tmp_path / render.CHART_VALUES
    values.write_text(values.read_text().replace("CELERY_TASK_TIME_LIMIT: 300", "CELERY_TASK_TIME_LIMIT: 600", 1))
    schema = tmp_path / render.CHART_SCHEMA
    schema.write_text(schema.read_text().replace('"DEPLOYKIT_LEASE_TTL": {', '"DEPLOYKIT_LEASE_TTLX": {', 1))
    assert sorted(render.stale(full, tmp_path)) == sorted([render.CHART_VALUES, render.CHART_SCHEMA])
    result = subprocess.run([sys.executable, "-m", "deploykit.contract", "check", "--project", str(PROJECT),
                             "--root", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"STALE: {render.CHART_VALUES}" in result.stderr and "-    CELERY_TASK_TIME_LIMIT: 600" in result.stderr
    assert f"STALE: {render.CHART_SCHEMA}" in result.stderr
    render.write(full, tmp_path)
    assert render.stale(full, tmp_path) == {}


@pytest.mark.parametrize("fields, message", [
    ('chart = "maybe"', r"X_KNOB: chart 'maybe' is not one of set, computed"),
    ('chart_default = 5', r'X_KNOB: chart_default needs chart = "set"'),
    ('chart = "set"\nchart_default = "five"', r"X_KNOB: chart_default 'five' is not of type int"),
    ('chart = "set"\nchart_default = 0', r"X_KNOB: chart_default must be at least 1, got 0"),
])
def test_chart_fields_are_checked_naming_the_variable(tmp_path, fields, message):
    path = tmp_path / "extra.toml"
    path.write_text(f'[[variable]]\nname = "X_KNOB"\ntype = "int"\ndefault = 1\nmin = 1\nowner = "app"\n'
                    f'section = "S"\ndoc = "d"\n{fields}\n')
    with pytest.raises(contract.ContractError, match=message):
        contract.parse_file(path)


def test_a_new_declaration_reaches_the_configmap_after_regeneration(tmp_path):
    """Adding a setting is one entry in the contract plus `make contract-render`: the regenerated chart
    renders it (a "set" one by default, an unmarked one when given) and refuses it out of bounds."""
    copy_generated(tmp_path)
    shutil.copytree(CHART_DIR, tmp_path / "helm" / "django-celery", dirs_exist_ok=True)
    project = tmp_path / "contract.toml"
    project.write_text(PROJECT.read_text() + '''
[[variable]]
name = "DUMMY_SET_KNOB"
type = "int"
default = 7
min = 1
owner = "app"
section = "E-mail"
doc = "A dummy the chart sets."
chart = "set"

[[variable]]
name = "DUMMY_OPTIONAL_KNOB"
type = "str"
default = "x"
owner = "app"
section = "E-mail"
doc = "A dummy the chart accepts."
''')
    layered = contract.load(project=project)
    assert set(render.write(layered, tmp_path)) >= {render.CHART_VALUES, render.CHART_SCHEMA}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(BASE_VALUES, f)

    def template(*args):
        return subprocess.run([helm_binary(), "template", "release", str(tmp_path / "helm" / "django-celery"),
                               "--values", f.name, "--show-only", CONFIGMAP[0], *args], capture_output=True, text=True)
    try:
        data = yaml.safe_load(template("--set", "config.env.DUMMY_OPTIONAL_KNOB=hello").stdout)["data"]
        refused = template("--set", "config.env.DUMMY_SET_KNOB=0")
    finally:
        os.unlink(f.name)
    assert (data["DUMMY_SET_KNOB"], data["DUMMY_OPTIONAL_KNOB"]) == ("7", "hello")
    assert refused.returncode != 0 and "/config/env/DUMMY_SET_KNOB" in refused.stderr
