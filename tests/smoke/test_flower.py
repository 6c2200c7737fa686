"""Flower, with credentials, lists the live workers of every pool."""

from __future__ import annotations

from smokelib import poll


def flower_workers(http, target, auth) -> dict:
    response = http.get(target.url(target.flower_path + "api/workers"), params={"refresh": "1"}, auth=auth,
                        timeout=30)
    response.raise_for_status()
    return response.json()


def test_flower_lists_the_workers_of_both_pools(http, target, flower_auth):
    workers = poll(lambda: flower_workers(http, target, flower_auth),
                   lambda w: any(n.startswith("default-io@") for n in w) and any(n.startswith("images@") for n in w),
                   90, interval=2, what="Flower to list both worker pools")
    queues = {name: {q["name"] for q in info.get("active_queues") or []} for name, info in workers.items()}
    assert any({"default", "io"} <= q for n, q in queues.items() if n.startswith("default-io@")), queues
    assert any("images" in q for n, q in queues.items() if n.startswith("images@")), queues
