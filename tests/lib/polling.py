"""The poll loops of every test suite: wait for a condition, or for a set of tasks, with a deadline, never
a fixed sleep.

Each suite's pytest.ini puts tests/lib on the import path (`pythonpath`), so suites that run with
their own `-c pytest.ini` import it the same way: `from polling import wait_until`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class Abort(RuntimeError):
    """Raised by a check: stop waiting now (e.g. the process being waited for died)."""


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.5,
    *,
    done: Callable[[Any], bool] = bool,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> Any:
    """Call check() until done(its value) holds, and return that value.

    Exceptions listed in `retry_on` count as "not yet" (a service still starting); any other
    exception, and Abort always, ends the wait at once. On timeout, TimeoutError names what was
    awaited and the last value or error seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
            if done(value):
                return value
            last = value
        except Abort:
            raise
        except retry_on as exc:  # an empty tuple catches nothing
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def wait_all_succeeded(state: Callable[[str], str], ids: list[str], timeout: float, stall: float | None = None,
                       threads: int = 4) -> dict[str, str]:
    """Read each task's state with state(id) until every one is SUCCESS or the time is up; the last
    state of each ("error <exception>" when its read failed).

    The deadline holds inside a round too: once it passed, the remaining reads are not made ("unread"),
    so a web tier that stopped answering ends the wait instead of hanging it for a timeout per task.
    With `stall`, keep waiting past the timeout while tasks still complete, until none completed for
    `stall` seconds: a backlog that drains slowly on a busy host is late, not lost."""
    states = {i: "?" for i in ids}
    deadline = time.monotonic() + timeout

    def read(task_id: str) -> str:
        if time.monotonic() > deadline:
            return "unread"
        try:
            return state(task_id)
        except Exception as exc:  # noqa: BLE001  (a failed read is a state to report, not a crash of the wait)
            return f"error {type(exc).__name__}"

    completed = 0
    while True:
        pending = [i for i, s in states.items() if s != "SUCCESS"]
        if not pending or time.monotonic() > deadline:
            return states
        with ThreadPoolExecutor(threads) as pool:
            states.update(zip(pending, pool.map(read, pending)))
        now_completed = len(ids) - sum(s != "SUCCESS" for s in states.values())
        if stall and now_completed > completed:
            deadline = max(deadline, time.monotonic() + stall)
        completed = now_completed
        time.sleep(1)
