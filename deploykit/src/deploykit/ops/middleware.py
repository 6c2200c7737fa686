"""Answer probe paths before host validation and the SSL redirect.

Kubernetes probes and Prometheus scrapes reach the pod by IP over plain HTTP, with `Host: 10.1.2.3:8000`.
With DJANGO_ALLOWED_HOSTS and DJANGO_SECURE_SSL_REDIRECT on, Django would answer them 400 or 301. This
middleware, placed right after django_prometheus's "before" middleware and before SecurityMiddleware,
dispatches requests for DEPLOYKIT_PROBE_PATHS straight to their views, which never look at the Host
header. Only GET/HEAD are short-circuited; the views are read-only.

Operator endpoints (DEPLOYKIT_INTERNAL_PATHS: /status, /metrics) are for probes, scrapers and people
inside the deployment: a request that came through a proxy (it carries X-Forwarded-For, Forwarded or
X-Real-IP, which every front door here sets and a client cannot remove) gets 404, whatever the method and
however the path is spelled (`/status/`, `//status`; gunicorn has already decoded `/%73tatus`).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.http import HttpResponseNotFound
from django.urls import Resolver404, resolve

DEFAULT_PROBE_PATHS = ("/healthz", "/readyz", "/status", "/metrics")
DEFAULT_INTERNAL_PATHS = ("/status", "/metrics")
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def probe_paths() -> tuple[str, ...]:
    return tuple(getattr(settings, "DEPLOYKIT_PROBE_PATHS", DEFAULT_PROBE_PATHS))


def internal_paths() -> tuple[str, ...]:
    return tuple(getattr(settings, "DEPLOYKIT_INTERNAL_PATHS", DEFAULT_INTERNAL_PATHS))


def normalized(path: str) -> str:
    return re.sub(r"/{2,}", "/", path).rstrip("/")


def proxied(request) -> bool:
    return any(request.META.get(header) for header in PROXY_HEADERS)


class ProbeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.paths = frozenset(probe_paths())
        self.internal = frozenset(internal_paths())

    def __call__(self, request):
        path = normalized(request.path_info)
        if path in self.internal and proxied(request):
            return HttpResponseNotFound("Not found\n", content_type="text/plain")
        if request.method in ("GET", "HEAD") and path in self.paths:
            try:
                match = resolve(path)
            except Resolver404:
                # A project whose URLconf does not include deploykit.urls still answers its probes.
                try:
                    match = resolve(path, urlconf="deploykit.urls")
                except Resolver404:
                    return self.get_response(request)
            return match.func(request, *match.args, **match.kwargs)
        return self.get_response(request)
