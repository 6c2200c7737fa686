"""The one poll loop of every test suite: wait for a condition with a deadline, never a fixed sleep.

Each suite's pytest.ini puts tests/lib on the import path (`pythonpath`), so suites that run with
their own `-c pytest.ini` import it the same way: `from polling import wait_until`.
"""

from __future__ import annotations

import time
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
