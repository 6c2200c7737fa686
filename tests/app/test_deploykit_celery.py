"""deploykit.celery.install on Celery apps created the plain way: the redelivery bound reaches every task."""

import pytest
from celery import Celery, Task

from deploykit.celery import BoundedRedeliveryTask, HeartbeatStep, RedeliveryLimitExceeded, install


def plain_app(**kwargs) -> Celery:
    app = Celery("plain", set_as_current=False, broker="memory://", **kwargs)
    app.config_from_object({"task_always_eager": False})
    return app


def test_task_declared_before_install_is_bounded(db, settings):
    settings.DEPLOYKIT_MAX_REDELIVERIES = 1
    app = plain_app()

    @app.task(name="plain.work", shared=False)
    def work():
        return "ran"

    install(app)
    install(app)  # idempotent
    assert list(app.steps["consumer"]).count(HeartbeatStep) == 1
    task = app.tasks["plain.work"]
    assert isinstance(task, BoundedRedeliveryTask)
    # a message the broker redelivered (its worker died): counted, and refused past the limit
    task.push_request(id="plain-1", retries=0, delivery_info={"redelivered": True}, called_directly=False)
    try:
        assert task() == "ran"
        with pytest.raises(RedeliveryLimitExceeded, match="DEPLOYKIT_MAX_REDELIVERIES=1"):
            task()
    finally:
        task.pop_request()


def test_the_projects_own_task_class_is_kept():
    class Audited(Task):
        audited = True

    app = plain_app(task_cls=Audited)
    install(app)

    @app.task(name="plain.audited", shared=False)
    def audited():
        pass

    task = app.tasks["plain.audited"]
    assert isinstance(task, BoundedRedeliveryTask) and isinstance(task, Audited) and task.audited
    mro = type(task).__mro__
    assert mro.index(BoundedRedeliveryTask) < mro.index(Audited)  # the bound runs first


def test_an_explicit_base_stays_the_projects_choice():
    app = plain_app()
    install(app)

    @app.task(name="plain.own_base", base=Task, shared=False)
    def own_base():
        pass

    assert not isinstance(app.tasks["plain.own_base"], BoundedRedeliveryTask)  # documented: base= wins


def test_a_finalized_app_is_refused():
    app = plain_app()
    app.finalize()
    with pytest.raises(RuntimeError, match="already finalized"):
        install(app)
