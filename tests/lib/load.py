"""Load through a front door during a rollout (issue 16), shared by the Compose, Kubernetes and Ansible
suites: clients send `rate` requests/s in all, each on a new connection, with no retry that would hide a
failure; half start an `add` task, half read one task's result. `answers` counts status codes and
exception names, `failures` lists every 5xx and connection error, `accepted` holds the started task ids.

Threads, or with `processes` > 1 forked client processes of threads each: one Python process (the GIL)
fell short of 20 requests/s on a loaded 2-core machine.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter

import requests


class Load:
    def __init__(self, base: str, verify, rate: float = 30, clients: int = 6, processes: int = 1,
                 headers: dict | None = None):
        self.base, self.verify, self.rate, self.clients, self.processes = base, verify, rate, clients, processes
        self.headers = {**(headers or {}), "Connection": "close"}
        self.answers: Counter = Counter()
        self.failures: list[str] = []
        self.accepted: list[str] = []
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env, session.verify = False, self.verify
        session.headers.update(self.headers)
        return session

    def _request(self, n: int) -> None:
        response, failure = None, None
        try:
            with self._session() as session:  # a new connection every time
                response = (session.post(f"{self.base}/api/tasks/", json={"task": "add", "args": [n, 1]}, timeout=60)
                            if n % 2 else session.get(self.read_url, timeout=60))
        except requests.RequestException as exc:
            key, failure = type(exc).__name__, f"{type(exc).__name__}: {exc}"
        else:
            key = response.status_code
            if key >= 500:
                failure = f"{key} {response.text[:200]}"
        with self._lock:
            self.answers[key] += 1
            if failure:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {failure}")
            elif key == 202:
                self.accepted.append(response.json()["id"])

    def _clients(self, numbers, stopping, results=None) -> None:
        """A thread per client number, each sending a request every clients/rate s until `stopping`."""

        def client(n: int) -> None:
            next_at = time.monotonic()
            while not stopping.is_set():
                self._request(n)
                next_at += self.clients / self.rate
                stopping.wait(max(0.0, next_at - time.monotonic()))

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in numbers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        if results is not None:
            results.put((dict(self.answers), self.failures, self.accepted))

    def __enter__(self):
        with self._session() as session:
            first = session.post(f"{self.base}/api/tasks/", json={"task": "add", "args": [1, 2]}, timeout=30)
        assert first.status_code == 202, first.text
        self.read_url = f"{self.base}/api/tasks/{first.json()['id']}/"
        self.started = time.monotonic()
        if self.processes > 1:
            ctx = multiprocessing.get_context("fork")
            self._stopping, self._results = ctx.Event(), ctx.Queue()
            self._workers = [ctx.Process(target=self._clients, daemon=True,
                                         args=(range(p, self.clients, self.processes), self._stopping, self._results))
                             for p in range(self.processes)]
        else:
            self._stopping, self._results = threading.Event(), None
            self._workers = [threading.Thread(target=self._clients, args=(range(self.clients), self._stopping),
                                              daemon=True)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc):
        self._stopping.set()
        if self._results is not None:
            for _ in self._workers:
                answers, failures, accepted = self._results.get(timeout=120)
                self.answers.update(answers)
                self.failures += failures
                self.accepted += accepted
        for worker in self._workers:
            worker.join(90)
        self.seconds = time.monotonic() - self.started

    @property
    def total(self) -> int:
        return sum(self.answers.values())

    @property
    def per_second(self) -> float:
        return self.total / self.seconds


def task_state(session: requests.Session, base: str, task_id: str, timeout: float = 15) -> str:
    """One task's state read through the API, or "HTTP <status>" when the API did not answer 200."""
    response = session.get(f"{base}/api/tasks/{task_id}/", timeout=timeout)
    return response.json().get("state", "?") if response.status_code == 200 else f"HTTP {response.status_code}"
