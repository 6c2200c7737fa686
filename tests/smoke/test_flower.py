"""Flower, with credentials, lists live workers for every queue."""

from __future__ import annotations

from smokelib import QUEUES, poll, queues_in_name, served_queues


def flower_workers(http, target, auth) -> dict:
    response = http.get(target.url(target.flower_path + "api/workers"), params={"refresh": "1"}, auth=auth,
                        timeout=30)
    response.raise_for_status()
    return response.json()


def test_flower_lists_workers_for_every_queue(http, target, flower_auth):
    workers = poll(lambda: flower_workers(http, target, flower_auth), lambda w: served_queues(w) >= QUEUES,
                   90, interval=2, what=f"Flower to list workers for the queues {sorted(QUEUES)}")
    queues = {name: {q["name"] for q in info.get("active_queues") or []} for name, info in workers.items()}
    # For each queue, a worker that announces it in its name really consumes it.
    for queue in QUEUES:
        assert any(queue in queues_in_name(n) and queue in queues[n] for n in workers), (queue, queues)
