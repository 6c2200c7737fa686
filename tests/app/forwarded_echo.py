"""WSGI app for test_app_forwarded.py: the reference project, plus GET /__forwarded answering what Django and
the rate limits make of the request's forwarding headers as gunicorn passed them."""

import json

from config.wsgi import application as project
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest

from deploykit.ops.throttle import client_address


def application(environ, start_response):
    if environ.get("PATH_INFO") != "/__forwarded":
        return project(environ, start_response)
    request = WSGIRequest(environ)
    body = json.dumps({
        "secure": request.is_secure(),  # SECURE_PROXY_SSL_HEADER
        "client": client_address(request, settings.DEPLOYKIT_NUM_PROXIES),
        "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
        "forwarded_host": environ.get("HTTP_X_FORWARDED_HOST"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
