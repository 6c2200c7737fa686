"""deploykit.ops.queues: routes resolved by Celery's own router on a real Celery app (no broker needed)."""

import pytest
from celery import Celery
from django.core.management import CommandError, call_command

import deploykit.tasks  # noqa: F401  (deploykit.probe, a shared task every app gets)
from deploykit.ops import queues


def make_app(**conf) -> Celery:
    """An app with three tasks of its own (and the probe) only: the shared tasks every app in this process
    gets (the reference project's, deploykit's) are taken out again."""
    app = Celery("routing-test", set_as_current=False, broker="memory://")
    app.conf.update(**conf)

    @app.task(name="shop.tasks.ship_order", shared=False)
    def ship_order():
        pass

    @app.task(name="shop.tasks.thumbnail", queue="images", shared=False)
    def thumbnail():
        pass

    @app.task(name="shop.tasks.report", shared=False)
    def report():
        pass

    app.finalize()
    for name in [name for name in app.tasks if not name.startswith(("shop.", "celery.", "deploykit.probe"))]:
        app.tasks.unregister(name)
    assert "deploykit.probe" in app.tasks  # deploykit's shared task
    return app


def routes(app, beat=None) -> dict:
    return queues.check(app, [], "X=", beat=beat or {}).routed


def test_default_queue_is_celery():
    assert routes(make_app())["celery"] == ["shop.tasks.report", "shop.tasks.ship_order"]


def test_decorator_queue():
    assert routes(make_app())["images"] == ["shop.tasks.thumbnail"]


def test_task_routes_glob_and_function():
    app = make_app(task_routes=[{"shop.tasks.ship_*": {"queue": "io"}},
                                lambda name, *args, **kw: {"queue": "reports"} if name.endswith("report") else None])
    routed = routes(app)
    assert routed["io"] == ["shop.tasks.ship_order"] and routed["reports"] == ["shop.tasks.report"]
    assert "celery" not in routed


def test_project_default_queue():
    assert set(routes(make_app(task_default_queue="default"))) == {"default", "images"}


def test_probe_and_builtins_do_not_count_unless_routed():
    app = make_app()
    assert "celery.chord_unlock" in app.tasks
    assert not any(name.startswith(("celery.", "deploykit.probe")) for names in routes(app).values() for name in names)
    app = make_app(task_routes={"celery.*": {"queue": "housekeeping"}})
    assert "celery.chord_unlock" in routes(app)["housekeeping"]


def test_beat_entry_options_win_over_the_tasks_route():
    app = make_app(task_routes={"shop.tasks.report": {"queue": "io"}})
    routed = routes(app, beat={"nightly": ("shop.tasks.report", {"queue": "reports"}),
                               "hourly": ("shop.tasks.report", {}),
                               "by-key": ("shop.tasks.ship_order", {"routing_key": "images"}),
                               "elsewhere": ("other.service.task", {})})
    assert routed["reports"] == ["beat entry 'nightly'"]
    assert "beat entry 'hourly'" in routed["io"]
    assert "beat entry 'elsewhere'" in routed["celery"]
    assert "beat entry 'by-key'" in routed["images"]


def test_settings_beat_schedule_is_read(db):
    app = make_app(beat_schedule={"nightly": {"task": "shop.tasks.report", "schedule": 60.0,
                                              "options": {"queue": "reports"}}})
    assert queues.check(app, ["reports"], "X=reports").routed["reports"] == ["beat entry 'nightly'"]


def test_stored_database_scheduler_entries_count(db):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="from-the-admin", task="shop.tasks.ship_order", interval=every, queue="admin-q")
    PeriodicTask.objects.create(name="disabled", task="shop.tasks.ship_order", interval=every, queue="off-q",
                                enabled=False)
    routed = queues.check(make_app(), [], "X=").routed
    assert routed["admin-q"] == ["beat entry 'from-the-admin'"] and "off-q" not in routed


def test_missing_consumer_and_unused_consumed_queue():
    report = queues.check(make_app(), ["celery", "io"], "DEPLOYKIT_CONSUMED_QUEUES=celery,io",
                          beat={"nightly": ("shop.tasks.report", {"queue": "images"})})
    assert report.problems == [
        "queue 'images' gets shop.tasks.thumbnail, beat entry 'nightly' but no worker pool consumes it "
        "(DEPLOYKIT_CONSUMED_QUEUES=celery,io)",
        "queue 'io' is consumed by a worker pool (DEPLOYKIT_CONSUMED_QUEUES=celery,io) but no task or beat "
        "entry is routed to it",
    ]


def test_a_queue_named_explicit_may_be_consumed_with_nothing_routed_to_it():
    """apply_async(queue=...) is invisible to the router: DEPLOYKIT_EXPLICIT_QUEUES names such queues."""
    report = queues.check(make_app(), ["celery", "images", "bulk"], "X=celery,images,bulk", beat={},
                          explicit=["bulk"])
    assert report.problems == []
    unnamed = queues.check(make_app(), ["celery", "images", "bulk"], "X=celery,images,bulk", beat={},
                           explicit=["other"])
    assert unnamed.problems == ["queue 'bulk' is consumed by a worker pool (X=celery,images,bulk) but no task or "
                                "beat entry is routed to it"]


@pytest.mark.django_db
def test_the_command_reads_the_explicit_queues_setting(settings, capsys):
    settings.DEPLOYKIT_EXPLICIT_QUEUES = ["bulk"]
    call_command("check_queues", consumed="default,io,images,bulk")
    assert "routed to 3 queues (default, images, io)" in capsys.readouterr().out
    settings.DEPLOYKIT_EXPLICIT_QUEUES = []
    with pytest.raises(CommandError, match="queue 'bulk' is consumed by a worker pool"):
        call_command("check_queues", consumed="default,io,images,bulk")


def test_all_consumed():
    report = queues.check(make_app(), ["celery", "images"], "DEPLOYKIT_CONSUMED_QUEUES=celery,images", beat={})
    assert report.problems == []
    assert report.summary.startswith("3 tasks and beat entries routed to 2 queues (celery, images)")


def test_undeclared_queue_with_create_missing_off():
    app = make_app(task_default_queue="default", task_create_missing_queues=False,
                   task_queues={"default": {"exchange": "default", "routing_key": "default"}})
    report = queues.check(app, ["default", "images"], "X=default,images", beat={})
    assert report.problems == ["queue 'images' gets shop.tasks.thumbnail but is not declared in CELERY_TASK_QUEUES "
                               "(and CELERY_TASK_CREATE_MISSING_QUEUES is off): publishing to it fails"]


def test_many_senders_are_shortened():
    assert queues._names([f"t{i}" for i in range(10)]) == "t0, t1, t2, t3, t4, t5, t6, t7 and 2 more"


# --- the command, on the reference project ---------------------------------------------------------------
@pytest.mark.django_db
def test_reference_project_routes_match_its_three_pools(capsys):
    call_command("check_queues", consumed="default,io,images")
    out = capsys.readouterr().out
    assert "routed to 3 queues (default, images, io)" in out


@pytest.mark.django_db
def test_reference_project_without_the_images_pool():
    with pytest.raises(CommandError) as refused:
        call_command("check_queues", consumed="default,io")
    assert "queue 'images' gets jobs.tasks.finalize_image, jobs.tasks.make_thumbnail, jobs.tasks.resize_image but " \
           "no worker pool consumes it (--consumed=default,io)" in str(refused.value)


def test_empty_consumed_list_skips(settings, capsys):
    settings.DEPLOYKIT_CONSUMED_QUEUES = []
    call_command("check_queues")
    assert "skipped" in capsys.readouterr().out
