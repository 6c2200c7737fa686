"""A second beat started by mistake waits as standby; nothing periodic runs twice (deploykit/ops/beat.py)."""

from __future__ import annotations

import os
import time

from seclib import wait_for

WINDOW = float(os.environ.get("CHAOS_BEAT_WINDOW", "60"))
TICK = 15  # DEPLOYKIT_BEAT_TICK_SECONDS in the Compose stack (default)


def ticks(stack) -> int:
    return int(stack.psql("SELECT count FROM deploykit_beattick WHERE name = 'beat'") or 0)


def test_a_second_beat_stays_standby_and_nothing_is_scheduled_twice(stack):
    stack.compose("up", "-d", "--no-recreate", "--no-deps", "--scale", "beat=2", "beat", timeout=300)
    try:
        wait_for(lambda: "waiting as standby" in stack.logs("beat"), 120, "the second beat to wait as standby", interval=2)
        first = ticks(stack)
        time.sleep(WINDOW)  # the measurement window itself
        runs = ticks(stack) - first
        print(f"\nCHAOS second-beat: deploykit.beat_tick ran {runs} times in {WINDOW:.0f} s (every {TICK} s: at most "
              f"{int(WINDOW // TICK) + 1} expected)")
        assert 0 < runs <= WINDOW // TICK + 1, runs
    finally:
        stack.compose("up", "-d", "--no-recreate", "--no-deps", "--scale", "beat=1", "beat", timeout=300)
