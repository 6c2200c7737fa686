"""gunicorn configuration of every project's web process (deploykit-web: `gunicorn -c
python:deploykit.ops.gunicorn_conf`): everything from the environment, read through deploykit's
configuration contract (typed, with its declared defaults), logs to stdout. GUNICORN_CMD_ARGS adds to it."""

import os

from deploykit import contract
from deploykit.ops import gunicorn_drain, gunicorn_forwarded
from deploykit.config.env import Env

env = Env(contract=contract.load())
bind = f"0.0.0.0:{env.value('PORT')}"
workers = env.value("GUNICORN_WORKERS")
threads = env.value("GUNICORN_THREADS")
worker_class = "deploykit.ops.gunicorn_drain.ThreadWorker"  # gthread closing its listeners at once on stop
timeout = env.value("GUNICORN_TIMEOUT")
graceful_timeout = timeout
keepalive = 5
# Recycle workers now and then (memory leaks); jitter avoids restarting all at once.
max_requests = 2000
max_requests_jitter = 200
# Logs: gunicorn's own and the access log on stdout (the container runtime collects them).
accesslog = "-"
errorlog = "-"
loglevel = env.value("LOG_LEVEL").lower()
if env.value("LOG_FORMAT") == "json":
    access_log_format = (
        '{"time":"%(t)s","level":"INFO","logger":"gunicorn.access","remote":"%(h)s","method":"%(m)s",'
        '"path":"%(U)s","query":"%(q)s","status":%(s)s,"bytes":"%(B)s","duration_ms":%(M)s,'
        '"user_agent":"%(a)s"}'
    )
# The reverse proxy in front sets X-Forwarded-Proto/-For; Django and the rate limits read them. Only the
# peers listed here may: pre_request drops those headers from any other (deploykit/ops/gunicorn_forwarded.py).
forwarded_allow_ips = env.value("FORWARDED_ALLOW_IPS")
# Docker's /dev/shm is a tmpfs, unlike /tmp on some hosts: heartbeats stay fast under disk pressure.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Load the app before forking: a broken configuration fails once, with the settings error.
preload_app = True
# No runtime control socket: nothing uses it, and the image's file system may be read-only.
control_socket_disable = True
# A malformed value stops gunicorn here, naming the variable (the settings would refuse it next).
env.raise_if_invalid()


# On SIGTERM: drain first (DEPLOYKIT_WEB_DRAIN_SECONDS from the settings, loaded by preload_app), then
# gunicorn's graceful stop. The grace period of the container or unit must cover both.
def when_ready(server):
    from django.conf import settings

    gunicorn_drain.install(server, settings.DEPLOYKIT_WEB_DRAIN_SECONDS)


def pre_request(worker, req):
    gunicorn_forwarded.pre_request(worker, req)
    gunicorn_drain.pre_request(worker, req)
