"""Shared helpers of the smoke suite: target settings from the environment, polling, a tiny image.

The suite runs against any deployment reachable over HTTPS (the Compose stack, a Kubernetes ingress):
everything target-specific comes from SMOKE_* variables (see README.md next to this file).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any, Callable

import requests
from polling import wait_until


@dataclass(frozen=True)
class Target:
    base_url: str  # https://host:port, no trailing slash
    ca_file: str | None  # CA bundle that signs the target's certificate (None: the system store)
    http_url: str | None  # plain-HTTP entry that must redirect to HTTPS (None: not checked)
    flower_user: str
    flower_password: str
    flower_path: str
    admin_path: str
    artifacts: str

    @classmethod
    def from_env(cls) -> "Target":
        base = os.environ.get("SMOKE_BASE_URL", "").rstrip("/")
        if not base.startswith("https://"):
            raise RuntimeError("SMOKE_BASE_URL must be the https:// URL of the deployment under test")
        return cls(
            base_url=base,
            ca_file=os.environ.get("SMOKE_CA_FILE") or None,
            http_url=(os.environ.get("SMOKE_HTTP_URL") or "").rstrip("/") or None,
            flower_user=os.environ.get("SMOKE_FLOWER_USER", ""),
            flower_password=os.environ.get("SMOKE_FLOWER_PASSWORD", ""),
            flower_path="/" + os.environ.get("SMOKE_FLOWER_PATH", "flower").strip("/") + "/",
            admin_path="/" + os.environ.get("SMOKE_ADMIN_PATH", "admin").strip("/") + "/",
            artifacts=os.environ.get("SMOKE_ARTIFACTS", os.path.join(os.path.dirname(__file__), "artifacts")),
        )

    def url(self, path: str) -> str:
        return self.base_url + path

    def session(self) -> requests.Session:
        session = requests.Session()
        # TLS is verified against the deployment's CA: never verify=False. trust_env off, or requests
        # lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override this CA (and *_PROXY divert local traffic).
        session.trust_env = False
        session.verify = self.ca_file or True
        return session


# Every queue the project routes to must have a live worker: SMOKE_QUEUES (default: the reference
# project's). Worker names start with the queues they consume ("default@host" or "default-io-images@host",
# whichever queues a target groups into one pool).
QUEUES = frozenset(q.strip() for q in os.environ.get("SMOKE_QUEUES", "default,io,images").split(",") if q.strip())


def exec_command() -> list[str]:
    """The command prefix that runs a command in an app container of the target (SMOKE_EXEC; for Compose,
    `exec -T web` of SMOKE_COMPOSE). Empty when the target gives neither."""
    import shlex

    if os.environ.get("SMOKE_EXEC"):
        return shlex.split(os.environ["SMOKE_EXEC"])
    if os.environ.get("SMOKE_COMPOSE"):
        return [*shlex.split(os.environ["SMOKE_COMPOSE"]), "exec", "-T", "web"]
    return []


def queues_in_name(worker: str, known: frozenset[str] = QUEUES) -> set[str]:
    """The queues in a worker's name: its queue list joined by `-`, and a queue name may hold `-` itself
    (`checkout-express`), so the name is split into known queues where it can be; else at every `-`."""
    def split(rest: str) -> list[str] | None:
        if rest in known:
            return [rest]
        for queue in sorted(known, key=len, reverse=True):
            if rest.startswith(queue + "-") and (tail := split(rest[len(queue) + 1:])) is not None:
                return [queue, *tail]
        return None

    prefix = worker.split("@", 1)[0]
    return set(split(prefix) or prefix.split("-"))


def served_queues(workers) -> set[str]:
    """The queues named by these worker names, whichever way a target groups queues into workers."""
    return set().union(*(queues_in_name(w) for w in workers))


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float, interval: float = 0.5,
         what: str = "condition") -> Any:
    """Call fetch() until done(value) or the timeout; the target may be briefly unavailable meanwhile."""
    return wait_until(fetch, timeout, what, interval, done=done, retry_on=requests.RequestException)


def png_bytes(width: int = 1600, height: int = 1200) -> bytes:
    """A real PNG (gradient, so it compresses like a photo would not) built with Pillow."""
    from PIL import Image

    picture = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
