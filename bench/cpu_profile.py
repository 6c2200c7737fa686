"""Where a worker's CPU goes during a drain: py-spy (from the dev virtualenv) attached from the host to
the Celery processes of one container, summarised by library and by function.

py-spy samples without stopping the process (--nonblocking), and only threads holding the GIL
(--gil): its idle detection cannot see into the container's PID namespace, so without --gil a thread
blocked on a pipe or socket read counts as busy (seen: the pool's result pipe and the bench flusher's
sleep as 60 % of "active" samples). The shares below are of Python CPU work, so they say where the
work is, not how long it took. Raw stacks are kept next to the results for a flame graph
(`py-spy` raw format: one `frame;frame;... count` line per stack).
"""
from __future__ import annotations

import collections
import re
import signal
import subprocess
from pathlib import Path

from stack import ROOT, Stack

PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
# A frame in py-spy's raw output with --nolineno: "function (package/module.py)".
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*)\)$")


class Profiler:
    """Context manager: record the Celery main process of SERVICE and its pool children."""

    def __init__(self, stack: Stack, service: str, raw_path: Path, rate: int = 200):
        self.stack, self.service, self.raw_path, self.rate = stack, service, raw_path, rate
        self.proc: subprocess.Popen | None = None

    def _celery_main_pid(self) -> str:
        (container,) = self.stack.container_ids(self.service)[:1]
        top = subprocess.run(["docker", "top", container, "-eo", "pid,ppid,args"], capture_output=True,
                             text=True, check=True).stdout.splitlines()[1:]
        procs = [line.split(None, 2) for line in top]
        celery = {pid: ppid for pid, ppid, args in procs if "celery" in args and "worker" in args}
        # The main process is the celery process whose parent is not itself a celery process.
        mains = [pid for pid, ppid in celery.items() if ppid not in celery]
        if len(mains) != 1:
            raise RuntimeError(f"{self.service}: expected one Celery main process, found {mains} in {procs}")
        return mains[0]

    def __enter__(self):
        self.raw_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(PY_SPY), "record", "--pid", self._celery_main_pid(), "--subprocesses", "--nonblocking", "--gil",
             "--nolineno", "--rate", str(self.rate), "--format", "raw", "--output", str(self.raw_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        _, err = self.proc.communicate(timeout=60)
        if not self.raw_path.exists():
            raise RuntimeError(f"py-spy wrote no profile for {self.service}: {err.strip()[-500:]}")
        return False


def area(path: str) -> str:
    """The library a frame belongs to: the first component of its (shortened) file name."""
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") if "/" not in path else head


def summarise(raw_path: Path, top: int = 12) -> dict:
    """Share of active samples per library (self time) and the functions with most self time."""
    by_area: collections.Counter = collections.Counter()
    by_func: collections.Counter = collections.Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = FRAME.match(stack.split(";")[-1])
        n = int(count)
        total += n
        if leaf:
            by_area[area(leaf["file"])] += n
            by_func[f"{leaf['func']} ({leaf['file']})"] += n
        else:
            by_area["(other)"] += n
    pct = lambda n: round(100 * n / total, 1) if total else 0.0  # noqa: E731
    return {"samples": total,
            "areas_pct": {name: pct(n) for name, n in by_area.most_common()},
            "top_self_pct": [[name, pct(n)] for name, n in by_func.most_common(top)]}
