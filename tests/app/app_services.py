"""Real services for the integration tests, each on its own free port and private directory:
redis-server, rabbitmq-server and PostgreSQL (Debian packages), a small SMTP server, and app processes
started through deploykit's start scripts (deploykit-*, on the venv's PATH) exactly like the images run them."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import socketserver
import sys
import subprocess
import threading
import time
import urllib.error
import urllib.request
from email import message_from_bytes
from pathlib import Path

from polling import Abort, wait_until  # noqa: F401  (Abort: raised by checks in this suite)

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app"
BIN = Path(sys.executable).parent  # the venv: deploykit installs its start scripts there


def _die_with_parent():  # preexec_fn: a killed test run leaves no servers or workers behind
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll until predicate() is truthy; any error but Abort means "not yet" (a service starting)."""
    return wait_until(predicate, timeout, what, interval, retry_on=Exception)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def stop_process(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> int | None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


# --- redis -------------------------------------------------------------------------------------------
class Redis:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.dir = workdir / f"redis-{self.port}"
        self.dir.mkdir(parents=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--protected-mode", "no"],
            stdout=open(self.dir / "redis.log", "wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
        wait_for(self.ping, 20, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        import redis

        return redis.Redis(port=self.port, socket_timeout=1).ping()

    def stop(self):
        if self.proc:
            stop_process(self.proc)


# --- RabbitMQ ----------------------------------------------------------------------------------------
class RabbitMQ:
    """rabbitmq-server with its own node name, ports, epmd port, data and log dirs (no system service), and
    its management HTTP API (the rabbitmq_management plugin) on a loopback port of its own."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.management_port = free_port()
        self.dir = workdir / f"rabbitmq-{self.port}"
        self.node = f"apptest{self.port}@localhost"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}/"

    def env(self) -> dict:
        home = self.dir / "home"
        env = dict(os.environ)
        env.update(
            HOME=str(home),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_PID_FILE=str(self.dir / "rabbitmq.pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.dir / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_LOGS="-",
        )
        return env

    def start(self):
        # The real server script: Debian's /usr/sbin wrapper would `su rabbitmq` (dropping our environment).
        exe = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        if not os.path.exists(exe):
            exe = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
        for sub in ("home", "mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        # Statistics every second (default 5 s): the management API's queue figures follow within one.
        (self.dir / "rabbitmq.conf").write_text(
            "loopback_users = none\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            "collect_statistics_interval = 1000\n")
        (self.dir / "advanced.config").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        cookie = self.dir / "home" / ".erlang.cookie"
        cookie.write_text("APPTESTCOOKIE")
        cookie.chmod(0o400)
        self.proc = subprocess.Popen([exe], env=self.env(), stdout=open(self.dir / "server.log", "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self.ready, 90, f"rabbitmq-server on port {self.port} (log: {self.dir / 'server.log'})",
                 interval=0.5)
        wait_for(self.management_ready, 60, f"RabbitMQ's management API on port {self.management_port}",
                 interval=0.5)
        return self

    def management_ready(self) -> bool:
        import base64

        request = urllib.request.Request(self.management_url + "api/overview", headers={
            "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise Abort(f"rabbitmq-server exited: {(self.dir / 'server.log').read_text()[-2000:]}")
        from kombu import Connection

        with Connection(self.url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1)
        return True

    def ctl(self, *args: str) -> str:
        """rabbitmqctl against this node (e.g. `list_queues name type`)."""
        exe = "/usr/lib/rabbitmq/bin/rabbitmqctl"
        if not os.path.exists(exe):
            exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
        result = subprocess.run([exe, "-n", self.node, "-q", *args], env=self.env(), capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # epmd was started for this node on its own port: stop it too.
        epmd = shutil.which("epmd") or next(iter(glob.glob("/usr/lib/erlang/erts-*/bin/epmd")), None)
        if epmd:
            subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], capture_output=True, timeout=10)


# --- PostgreSQL --------------------------------------------------------------------------------------
class Postgres:
    """A throw-away cluster (initdb) on a free port; as root it runs as the `postgres` system user."""

    def __init__(self):
        import tempfile

        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"app-tests-postgres-{self.port}-"))
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bin = Path(bins[-1])
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/app"

    def _run(self, *args, **kw):
        return subprocess.run([*self.as_user, *map(str, args)], check=True, capture_output=True, **kw)

    def start(self):
        if self.as_user:  # initdb refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = self.dir / "data"
        self._run(self.bin / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self._run(self.bin / "pg_ctl", "-D", data, "-l", self.dir / "server.log", "-w", "-t", "60", "start",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off")
        self._run(self.bin / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "app")
        return self

    def stop(self):
        with contextlib.suppress(Exception):
            self._run(self.bin / "pg_ctl", "-D", self.dir / "data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


# --- SMTP --------------------------------------------------------------------------------------------
class _SMTPHandler(socketserver.StreamRequestHandler):
    def reply(self, line: str):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self.reply("220 test-smtp ready")
        mail_from, rcpt, data = None, [], None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode(errors="replace").strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("HELO", "EHLO"):
                self.reply("250 test-smtp")
            elif verb == "MAIL":
                mail_from, rcpt = command.split(":", 1)[1].strip(), []
                self.reply("250 OK")
            elif verb == "RCPT":
                rcpt.append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b".\n", b""):
                        break
                    chunks.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                data = b"".join(chunks)
                self.server.messages.append({"from": mail_from, "to": rcpt, "message": message_from_bytes(data)})
                self.reply("250 OK: queued")
            elif verb == "RSET":
                mail_from, rcpt = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


class SMTPServer:
    """A minimal real SMTP server (RFC 5321 subset: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.server: socketserver.ThreadingTCPServer | None = None
        self.messages: list[dict] = []

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self):
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), _SMTPHandler)
        self.server.daemon_threads = True
        self.server.messages = self.messages
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


# --- app processes -----------------------------------------------------------------------------------
class AppProcess:
    """One of the deploykit-* start scripts started as a subprocess with the given environment; output goes to a log file."""

    def __init__(self, script: str, env: dict, logdir: Path, args: list[str] | None = None, name: str | None = None):
        self.script = script
        self.env = env
        self.name = name or script
        self.log = logdir / f"{self.name}-{time.monotonic_ns()}.log"
        self.args = args or []
        self.proc: subprocess.Popen | None = None

    def start(self):
        self.proc = subprocess.Popen([str(BIN / self.script), *self.args], env=self.env, cwd=APP,
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        def seen():
            if self.proc.poll() is not None and text not in self.output():
                raise Abort(f"{self.name} exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
            return text in self.output()

        wait_for(seen, timeout, f"{text!r} in {self.name} output", interval=0.3)

    def stop(self, sig=signal.SIGTERM, timeout: float = 60):
        if self.proc:
            started = time.monotonic()
            code = stop_process(self.proc, sig, timeout)
            print(f"stopped {self.name} in {time.monotonic() - started:.1f}s: exit {code}")
            return code
        return None


def wait_heartbeat(path: Path, proc: AppProcess, timeout: float = 90) -> None:
    """Until a worker started as PROC touches its heartbeat file (it consumes); fails at once if it exits."""
    def fresh():
        if proc.proc.poll() is not None:
            raise Abort(f"worker exited:\n{proc.output()[-3000:]}")
        return path.exists()

    wait_for(fresh, timeout, f"worker heartbeat {path}", interval=0.3)


def app_env(**overrides) -> dict:
    """The test environment for deploykit-* subprocesses: the virtualenv's bin first on PATH."""
    import sys

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def wait_state(result_or_id, states=("SUCCESS", "FAILURE"), timeout: float = 60):
    from celery.result import AsyncResult

    result = result_or_id if hasattr(result_or_id, "state") else AsyncResult(str(result_or_id))
    wait_for(lambda: result.state in states, timeout, f"task {result.id} to reach {states}", interval=0.2)
    return result


def poll_json(client, url: str, done, timeout: float = 60) -> dict:
    body: dict = {}

    def check():
        nonlocal body
        body = client.get(url).json()
        return done(body)

    try:
        wait_for(check, timeout, url, interval=0.3)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; last body: {body}") from None
    return body


def start_web(start, name: str, **env) -> AppProcess:
    """gunicorn through deploykit-web on a free loopback port (one worker, two threads), once it
    listens; `proc.base` is its URL."""
    port = free_port()
    proc = start("deploykit-web", name=name, PORT=port, GUNICORN_WORKERS=1, GUNICORN_THREADS=2, **env)
    wait_for(lambda: port_open(port), 90, "gunicorn")
    proc.base = f"http://127.0.0.1:{port}"
    return proc


def http(url: str, headers: dict | None = None, timeout: float = 10):
    request = urllib.request.Request(url, headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def switch_broker(app, **conf):
    """Point the test process's (already configured) Celery app at another broker/result backend.
    (Celery itself prefers the CELERY_BROKER_URL environment variable over its configuration.)"""
    from kombu import pools

    from deploykit.delivery.redis_transport import broker_transport

    conf.setdefault("broker_transport", broker_transport(conf["broker_url"]))  # as config/settings.py picks it
    os.environ["CELERY_BROKER_URL"] = conf["broker_url"]
    pools.reset()  # kombu's process-wide connection/producer pools
    app._pool = None
    app.amqp._producer_pool = None
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)
    app.conf.update(**conf)
    if "task_queues" in conf:  # app.amqp caches the declarations and the router built on them
        app.amqp.__dict__.pop("queues", None)
        app.amqp.flush_routes()
        app.amqp.router = app.amqp.Router()
