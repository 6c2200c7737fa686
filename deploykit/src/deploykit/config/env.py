"""Reading settings from the environment, and refusing unsafe production start-up.

`config/settings.py` is the only module that reads the environment, and it does so through `Env` below:
typed getters (on top of django-environ's parsers) that also *collect* problems. When the settings module
is done it calls `env.raise_if_invalid()`, which raises one `ImproperlyConfigured` naming every missing or
insecure variable, so a process started with a bad configuration stops before it serves or consumes
anything, with a message an operator can act on.

"Production mode" means DJANGO_DEBUG is off (the default). A variable declared with `required=True`
must then be set, non-empty and not a known placeholder; in debug mode its `debug_default` is used.

`Env.value(name)` reads a variable as the configuration contract declares it (deploykit.contract: type,
default, bounds, required, secret); the other getters are the primitives it is built on.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from deploykit import contract as contract_mod

# Values that are never acceptable for a secret in production (compared case-insensitively).
INSECURE_VALUES = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "secret",
        "password",
        "admin",
        "insecure",
        "example",
        "default",
        "test",
        "xxx",
        "todo",
        "flower",
        "guest",
    }
)
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE = 5
PASSWORD_MIN_LENGTH = 8
SUPPORTED_DB_ENGINES = frozenset({"django.db.backends.postgresql", "django.db.backends.sqlite3"})


class ConfigurationError(ImproperlyConfigured):
    """Start-up refused: the message names the variables to fix."""


def is_collectstatic(argv: list[str] | None = None) -> bool:
    """True when this process is `manage.py collectstatic` (the image build runs it without secrets)."""
    argv = sys.argv if argv is None else argv
    return len(argv) > 1 and argv[1] == "collectstatic"


def looks_insecure(value: str) -> bool:
    lowered = value.strip().lower()
    return (
        lowered in INSECURE_VALUES
        or lowered.startswith("django-insecure")
        or "change-me" in lowered
        or "changeme" in lowered
    )


def secret_key_problem(value: str) -> str | None:
    """Why `value` is not a production-grade DJANGO_SECRET_KEY, or None."""
    if looks_insecure(value):
        return "is a placeholder/insecure value"
    if len(value) < SECRET_KEY_MIN_LENGTH or len(set(value)) < SECRET_KEY_MIN_UNIQUE:
        return (
            f"must be at least {SECRET_KEY_MIN_LENGTH} characters with at least "
            f"{SECRET_KEY_MIN_UNIQUE} different ones (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(64))'`)"
        )
    return None


def fallbacks_problem(values: list[str]) -> str | None:
    """Why a DJANGO_SECRET_KEY_FALLBACKS list holds a key that would not pass as DJANGO_SECRET_KEY, or None."""
    for position, value in enumerate(values, 1):
        problem = secret_key_problem(value)
        if problem:
            return f"entry {position} of {len(values)} {problem} (each previous key is checked as DJANGO_SECRET_KEY is)"
    return None


def password_problem(value: str) -> str | None:
    if looks_insecure(value):
        return "is a placeholder/insecure value"
    if len(value) < PASSWORD_MIN_LENGTH:
        return f"must be at least {PASSWORD_MIN_LENGTH} characters"
    return None


_MISSING = object()


class Env:
    """Typed access to the environment that collects production-mode problems instead of failing early."""

    def __init__(self, environ_: Mapping[str, str] | None = None, *, debug_var: str = "DJANGO_DEBUG",
                 contract: contract_mod.Contract | None = None):
        self.environ = os.environ if environ_ is None else environ_
        self._env = environ.Env()
        self._env.ENVIRON = self.environ  # parse from the given mapping (tests pass their own)
        self.contract = _own_contract() if contract is None else contract
        self.errors: list[str] = []
        self.read: set[str] = set()  # every name looked up, declared or not (tests check it against the contract)
        self.debug = self.bool(debug_var, False)
        self.production = not self.debug
        # An image build loads the settings without secrets: collectstatic is recognised by itself, any other
        # build command says so with DEPLOYKIT_BUILD_STEP=true. Nothing is required or checked then.
        self.build_step = is_collectstatic() or self.bool("DEPLOYKIT_BUILD_STEP", False)

    # -- primitive getters ------------------------------------------------------------------------
    def _raw(self, name: str) -> str | None:
        self.read.add(name)
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def is_set(self, name: str) -> bool:
        return self._raw(name) is not None

    def _parse(self, name: str, cast: Callable[[str], Any], raw: str) -> Any:
        try:
            return cast(raw)
        except (ValueError, TypeError) as exc:
            self.error(name, f"has an invalid value {raw!r}: {exc}")
            return None

    def str(self, name: str, default: Any = _MISSING, **kw: Any) -> Any:
        return self.get(name, default, **kw)

    def get(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        cast: Callable[[str], Any] | None = None,
        required: bool = False,
        debug_default: Any = _MISSING,
        secret: bool = False,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """Return the variable `name`.

        required: in production mode it must be set (and, with secret=True, not a placeholder);
        debug_default: the value used when unset in debug mode (and during the build-time collectstatic).
        check: returns a reason string when the (parsed) value is unacceptable in production mode.
        """
        raw = self._raw(name)
        if raw is None:
            if required and (self.debug or self.build_step) and debug_default is not _MISSING:
                return debug_default
            if required and not self.build_step:
                self.error(name, "is required in production mode (DJANGO_DEBUG is off) but is not set")
                return None if default is _MISSING else default
            if default is _MISSING:
                return debug_default if debug_default is not _MISSING else None
            return default
        value = self._parse(name, cast, raw) if cast else raw
        if self.production and not self.build_step:
            if secret and isinstance(value, str) and looks_insecure(value):
                self.error(name, "is a placeholder/insecure value; set a real secret")
            elif check is not None and value is not None:
                problem = check(value)
                if problem:
                    self.error(name, problem)
        return value

    def bool(self, name: str, default: bool = False) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on", "y", "t"}:
            return True
        if lowered in {"0", "false", "no", "off", "n", "f"}:
            return False
        self.error(name, f"must be true or false, got {raw!r}")
        return default

    def int(self, name: str, default: int, *, minimum: int | None = None) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.error(name, f"must be an integer, got {raw!r}")
            return default
        if minimum is not None and value < minimum:
            self.error(name, f"must be at least {minimum}, got {value}")
            return default
        return value

    def float(self, name: str, default: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            self.error(name, f"must be a number, got {raw!r}")
            return default

    def list(self, name: str, default: list[str] | None = None, **kw: Any) -> list[str]:
        value = self.get(name, _MISSING, cast=_split, **kw)
        if value is None:
            return list(default or [])
        return value

    def db(self, name: str = "DATABASE_URL", **kw: Any) -> dict[str, Any] | None:
        url = self.value(name, **kw) if name in self.contract else self.get(name, **kw)
        if url is None:
            return None
        try:
            config = environ.Env.db_url_config(url)
        except Exception as exc:  # django-environ raises several types for bad URLs
            self.error(name, f"is not a valid database URL: {exc}")
            return None
        if config.get("ENGINE") not in SUPPORTED_DB_ENGINES:
            scheme = url.split(":", 1)[0]
            self.error(name, f"is not a valid database URL: unsupported scheme {scheme!r} "
                             "(use postgres://user:password@host:5432/name, or sqlite:///path for development)")
            return None
        return config

    def email(self, name: str = "EMAIL_URL", default: str | None = None) -> dict[str, Any]:
        default = self.contract[name].default if default is None else default
        url = self._raw(name) or default
        try:
            return environ.Env.email_url_config(url)
        except Exception as exc:
            self.error(name, f"is not a valid e-mail URL: {exc}")
            return environ.Env.email_url_config(default)

    # -- the contract -----------------------------------------------------------------------------
    def value(self, name: str, *, default: Any = _MISSING, debug_default: Any = _MISSING,
              cast: Callable[[str], Any] | None = None, check: Callable[[Any], str | None] | None = None) -> Any:
        """The variable `name` as the contract declares it: typed, bounds-checked, its declared default.

        default/debug_default override the declared ones where Python computes them (a path under the
        project, the broker URL); cast and check add what a type cannot say (a rate, a URL scheme).
        """
        var = self.contract[name]
        default = var.default if default is _MISSING else default
        debug_default = var.debug_default if debug_default is _MISSING else debug_default
        if cast is not None and isinstance(default, str):
            default = cast(default)
        if not var.required and debug_default is not None and self.debug:
            default = debug_default
        if var.type == "bool":
            return self.bool(name, default)
        if var.type in ("int", "float"):
            value = self.int(name, default, minimum=var.min) if var.type == "int" else self.float(name, default)
            problem = var.bounds_problem(value)
            if problem and value != default:
                self.error(name, problem)
                return default
            return value
        required = {"required": True, "debug_default": debug_default} if var.required else {}
        if var.type == "list":
            return self.list(name, default, check=check, **required)
        value = self.get(name, default, cast=cast, check=check, secret=var.secret and var.type == "str",
                         **required)
        if var.type == "enum" and value is not None:
            value = value.upper() if var.case == "upper" else value.lower() if var.case == "lower" else value
            problem = var.bounds_problem(value)
            if problem:
                self.error(name, problem)
                return default
        return value

    # -- problems ---------------------------------------------------------------------------------
    def error(self, name: str, message: str) -> None:
        self.errors.append(f"{name} {message}")

    def raise_if_invalid(self) -> None:
        if self.errors:
            mode = "production mode" if self.production else "debug mode"
            lines = "\n".join(f"  - {e}" for e in self.errors)
            raise ConfigurationError(
                f"Refusing to start ({mode}): fix these environment variables "
                f"(contract: docs/configuration.md):\n{lines}"
            )


@functools.cache
def _own_contract() -> contract_mod.Contract:
    """deploykit's own declarations: what an Env reads when no project contract is given."""
    return contract_mod.load()


def _split(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def check_flower(environ_: Mapping[str, str] | None = None) -> list[str]:
    """Problems that stop Flower from starting (credentials are required in production mode)."""
    env = Env(environ_)
    user = env.get("FLOWER_USER", required=True, debug_default=None)
    password = env.get("FLOWER_PASSWORD", required=True, debug_default=None, check=password_problem)
    if env.debug and bool(user) != bool(password):
        env.error("FLOWER_USER/FLOWER_PASSWORD", "must be set together")
    if user and ":" in user:
        env.error("FLOWER_USER", "must not contain ':'")
    return env.errors


# Broker/result-backend URL schemes a deployment may use (docs/configuration.md). Anything else -- a typo,
# `http://`, a transport this project never tests -- would only fail later, at the first publish.
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")
RESULT_BACKEND_SCHEMES = ("redis", "rediss", "django-db")


# Redis Sentinel (kombu's sentinel:// transport, Celery's sentinel:// result backend): refused by name. deploykit's
# delivery (the publish journal, worker leases, the recovery round: deploykit/delivery/) and the API throttle's
# cache each open one Redis connection from the URL, not through Sentinel: they would not follow a failover.
SENTINEL_SCHEMES = ("sentinel", "sentinels")
SENTINEL_PROBLEM = ("is a Redis Sentinel URL, which deploykit does not support (its publish journal, worker leases "
                    "and API throttle connect to one Redis server, not through Sentinel, and would not follow a "
                    "failover): give a redis:// or rediss:// address that always reaches the primary (a managed "
                    "Redis's primary endpoint, or a proxy such as HAProxy that follows the elected primary), or use "
                    "RabbitMQ (amqp://). See docs/configuration.md#redis-over-tls-and-sentinel")


def url_scheme_problem(url: str, allowed: tuple[str, ...]) -> str | None:
    """Why `url` does not use one of the `allowed` schemes (`django-db` is a bare name), or None. A rediss://
    URL must also name a certificate check deploykit accepts (`rediss_problem`)."""
    scheme = url.split("://", 1)[0] if "://" in url else url.strip()
    if scheme in SENTINEL_SCHEMES or scheme.startswith("sentinel"):  # also `sentinel://a;sentinel://b`
        return SENTINEL_PROBLEM
    if scheme in allowed:
        return rediss_problem(url) if scheme == "rediss" else None
    shown = ", ".join(f"{s}://" if s != "django-db" else s for s in allowed)
    return f"has an unsupported scheme {scheme!r}: use one of {shown}"


# rediss:// (Redis over TLS): the server's certificate check, `ssl_cert_reqs` in the URL's query. Its readers
# disagree when it is absent: kombu (the broker) silently turns verification OFF (CERT_NONE), Celery's Redis
# result backend refuses the URL at its first result, redis-py (the throttle cache) verifies. deploykit makes it
# explicit in both URLs before anything reads them (`secure_redis_url`): absent means `required`, in the
# spelling all three accept. `none` (no verification) is refused in production mode.
SSL_CERT_REQS = {"cert_required": "required", "required": "required", "cert_optional": "optional",
                 "optional": "optional", "cert_none": "none", "none": "none"}
_CERT_REQS_PARAM = re.compile(r"(?<=[?&])ssl_cert_reqs=([^&#]*)")


def _cert_reqs(url: str) -> str | None:
    """The URL's ssl_cert_reqs as written (the last one wins, as in the readers' query parsing), or None."""
    found = _CERT_REQS_PARAM.findall(url.split("#", 1)[0])
    return urllib.parse.unquote(found[-1]) if found else None


def rediss_problem(url: str) -> str | None:
    """Why a rediss:// URL's certificate check is unusable in production mode, or None."""
    written = _cert_reqs(url)
    if written is None:
        return None  # secure_redis_url adds ssl_cert_reqs=required
    value = SSL_CERT_REQS.get(written.strip().lower())
    if value is None:
        return (f"has ssl_cert_reqs={written!r}: use required (the default when it is left out), optional or "
                f"none, or CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE")
    if value == "none":
        return ("has ssl_cert_reqs=none, which turns the Redis server's certificate check off (anyone on the "
                "network path could pose as Redis and read every task): leave it out (required) and, for a "
                "server whose certificate a private CA signed, add ssl_ca_certs=/path/to/ca.pem")
    return None


def secure_redis_url(url: str | None) -> str | None:
    """A rediss:// URL with an explicit certificate check that kombu, Celery's result backend and redis-py read
    alike: `ssl_cert_reqs=required` added when absent, a known value rewritten in their common spelling. Any
    other URL (and an unknown value, which `rediss_problem` refuses) is returned unchanged."""
    if not url or not url.startswith("rediss://"):
        return url
    written = _cert_reqs(url)
    if written is None:
        base, _, fragment = url.partition("#")
        base += ("&" if "?" in base else "?") + "ssl_cert_reqs=required"
        return base + ("#" + fragment if fragment else "")
    value = SSL_CERT_REQS.get(written.strip().lower())
    return _CERT_REQS_PARAM.sub(f"ssl_cert_reqs={value}", url) if value else url


def is_redis_url(url: str | None) -> bool:
    """Whether a broker/result/cache URL points at Redis (the one test every Redis-dependent choice uses)."""
    return bool(url) and url.startswith(("redis://", "rediss://"))


# API rate limits (DEPLOYKIT_API_THROTTLE_*): "<requests>/<period>", the period a unit as DRF spells it.
RATE_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
                "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
RATE_OFF = "off"


def parse_rate(raw: str) -> tuple[int, int] | None:
    """`120/minute` -> (120, 60); `off` -> None (no limit). Raises ValueError naming the expected form."""
    if raw.strip().lower() == RATE_OFF:
        return None
    count, _, unit = raw.strip().partition("/")
    period = RATE_PERIODS.get(unit.strip().lower())
    if not count.strip().isdigit() or int(count) < 1 or period is None:
        raise ValueError(f"use <requests>/<second|minute|hour|day> with at least 1 request, e.g. 120/minute, "
                         f"or {RATE_OFF!r}")
    return int(count), period


def hosts_problem(hosts: list[str]) -> str | None:
    """Why a parsed DJANGO_ALLOWED_HOSTS list is unusable in production, or None."""
    if not hosts:
        return "names no host (only commas/blanks): list the host names the app answers to"
    if "*" in hosts:
        return "must name the hosts, not '*'"
    return None


def check_visibility_timeout(
    visibility_timeout: int, hard_time_limit: int, longest_countdown: int
) -> str | None:
    """Why a Redis visibility timeout is unsafe, or None.

    With acks_late, Redis redelivers any message not acknowledged within the visibility timeout -- so a
    task still running (up to the hard time limit) or waiting for its countdown/ETA would run twice.
    """
    if visibility_timeout <= hard_time_limit:
        return (
            f"({visibility_timeout}s) must be larger than the hard time limit "
            f"CELERY_TASK_TIME_LIMIT ({hard_time_limit}s), or running tasks are delivered twice"
        )
    if visibility_timeout <= longest_countdown:
        return (
            f"({visibility_timeout}s) must be larger than the longest countdown/ETA the app uses "
            f"({longest_countdown}s), or delayed tasks are delivered twice"
        )
    return None
