"""Answer probe paths before host validation and the SSL redirect.

Kubernetes probes and Prometheus scrapes reach the pod by IP over plain HTTP, with `Host: 10.1.2.3:8000`.
With DJANGO_ALLOWED_HOSTS and DJANGO_SECURE_SSL_REDIRECT on, Django would answer them 400 or 301. This
middleware, placed right after django_prometheus's "before" middleware and before SecurityMiddleware,
dispatches requests for DEPLOYKIT_PROBE_PATHS straight to their views, which never look at the Host
header. Only GET/HEAD are short-circuited; the views are read-only.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import Resolver404, resolve

DEFAULT_PROBE_PATHS = ("/healthz", "/readyz", "/status", "/metrics")


def probe_paths() -> tuple[str, ...]:
    return tuple(getattr(settings, "DEPLOYKIT_PROBE_PATHS", DEFAULT_PROBE_PATHS))


class ProbeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.paths = frozenset(probe_paths())

    def __call__(self, request):
        path = request.path_info.rstrip("/")
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
