"""Poison work in the Compose stack: a decompression bomb and a task that kills its process every time
end failed with a reason; no worker container crash-loops, and the workers keep serving."""

from __future__ import annotations

import time

from PIL import Image

from conftest import image_status, upload
from seclib import wait_for


def test_decompression_bomb_fails_with_a_reason_and_the_images_worker_keeps_serving(stack):
    before = stack.restarts("worker-images")
    # 100 Mpx of one colour: a small PNG that would need a lot of memory to decode (limit: 40 Mpx).
    bomb = image_status(stack, upload(stack, Image.new("1", (10_000, 10_000)), "bomb.png"))
    assert bomb["status"] == "failed" and "too many pixels" in bomb["error"], bomb
    normal = image_status(stack, upload(stack, Image.new("RGB", (1200, 900), "teal"), "normal.png"))
    assert normal["status"] == "done", normal
    assert stack.restarts("worker-images") == before
    print(f"\nCHAOS poison-image: failed with {bomb['error'][:80]!r}; next image done; restarts {before}")


def test_a_task_that_kills_its_worker_process_ends_failed_after_bounded_redeliveries(stack):
    before = stack.restarts("worker-default")
    task_id = stack.django("from jobs.tasks import crash; print(crash.delay().id)").splitlines()[-1]
    started = time.monotonic()

    def final_state():
        out = stack.django(f"from celery.result import AsyncResult; r = AsyncResult('{task_id}'); print(r.state, repr(r.result))")
        last = out.splitlines()[-1] if out else ""  # log lines may come first
        return last if last.startswith(("FAILURE", "SUCCESS")) else None

    state = wait_for(final_state, 300, "the crash task to end", interval=3)
    assert state.startswith("FAILURE") and "RedeliveryLimitExceeded" in state, state
    assert stack.restarts("worker-default") == before  # only pool processes died, never the container
    fresh = stack.submit("add", [2, 2]).json()["id"]
    assert stack.wait_all([fresh], timeout=120)[fresh] == "SUCCESS"
    print(f"\nCHAOS poison-task: {state[:120]} after {time.monotonic() - started:.0f} s; worker restarts {before}")
