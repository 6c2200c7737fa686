"""Whether this web process is draining before it stops: one byte shared by gunicorn's master and workers.

The master sets it on SIGTERM (gunicorn_drain.py); /readyz reads it in the workers. An anonymous shared
mapping made at import, before gunicorn forks, is inherited by every worker and shared both ways.
"""

from __future__ import annotations

import mmap

_flag = mmap.mmap(-1, 1)  # MAP_SHARED | MAP_ANONYMOUS


def draining() -> bool:
    return _flag[0] == 1


def start() -> None:
    _flag[0] = 1
