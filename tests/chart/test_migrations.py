"""The migration Job runs once per release without deadlocking `helm install --wait` (airflow#11979)."""
import pytest

from .helm_template_generator import HelmFailed, of_kind, pod_spec, render_chart

JOB = "templates/migrations/migrations-job.yaml"


def test_plain_job_not_a_hook_by_default():
    job = render_chart(show_only=[JOB])[0]
    assert job["kind"] == "Job"
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    container = pod_spec(job)["containers"][0]
    assert container["command"] == ["deploykit-migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 3 and job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_app_pods_wait_for_current_schema():
    objects = render_chart()
    for dep in of_kind(objects, "Deployment"):
        init = pod_spec(dep).get("initContainers", [])
        if dep["metadata"]["name"].endswith("-flower"):
            assert init == []  # Flower does not touch the database schema
            continue
        assert [c["name"] for c in init] == ["wait-for-migrations"], dep["metadata"]["name"]
        assert "migrate --check" in " ".join(init[0]["command"])


def test_job_name_changes_with_image_and_is_stable_otherwise():
    name = lambda values=None: render_chart(values=values, show_only=[JOB])[0]["metadata"]["name"]
    first = name()
    assert first.startswith("release-django-celery-migrate-")
    assert name() == first  # an identical upgrade keeps the finished Job
    assert name({"image": {"tag": "2.0.0"}}) != first  # a new image migrates again (Job specs are immutable)


def test_hooks_optional_for_gitops():
    job = render_chart(values={"secrets": {"existingSecret": "app-env"}, "migrations": {"helmHooks": True}}, show_only=[JOB])[0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = pod_spec(job)
    # As a hook it runs before the chart's ConfigMap, ServiceAccount and media claim exist.
    assert "serviceAccountName" not in spec
    container = spec["containers"][0]
    assert "envFrom" not in container
    assert {"name": "CELERY_TASK_TIME_LIMIT", "value": "300"} in container["env"]
    assert "media" not in [v["name"] for v in spec["volumes"]]


def test_hooks_refused_with_bundled_database():
    with pytest.raises(HelmFailed, match=r"migrations.helmHooks=true .* \(postgresql.enabled=false\)"):
        render_chart(values={"migrations": {"helmHooks": True}, "postgresql": {"enabled": True}, "database": {"url": ""}})


def test_disabled():
    objects = render_chart(values={"migrations": {"enabled": False}})
    assert not of_kind(objects, "Job")
    assert all("initContainers" not in pod_spec(d) for d in of_kind(objects, "Deployment"))
