"""One throw-away Compose stack for the benchmark: its own project (blueprint-bench-<broker>), env
file and loopback ports (38000-38999), started from the images `make images` built, torn down with
its volumes afterwards. Commands inside the stack run through `docker compose exec`."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "bench"
# Loopback ports per broker, so the two stacks never collide (the range 38000-38999 is the benchmark's).
# BENCH_PROJECT and BENCH_PORT_OFFSET (0-400; a multiple of 100 never meets another run's ports) let a
# second checkout run beside this one.
PORTS = {"redis": (38443, 38080), "rabbitmq": (38493, 38130)}
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))
if not 0 <= PORT_OFFSET <= 400:
    sys.exit(f"ERROR: BENCH_PORT_OFFSET must be 0-400 (ports stay within 38000-38999), got {PORT_OFFSET}")
# Not started: beat (a tick every 15 s onto the default queue) and Flower (an event consumer) would
# only add noise to what is measured.
BASE_SERVICES = ["postgres", "migrate", "web", "proxy", "worker-default", "worker-io", "worker-images", "sink", "slow", "client", "rawc"]


def env_value(env_file: Path, name: str) -> str:
    for line in reversed(env_file.read_text().splitlines()):
        if line.startswith(name + "="):
            return line.split("=", 1)[1]
    return ""


class Stack:
    def __init__(self, broker: str):
        self.broker = broker
        self.project = f"{os.environ.get('BENCH_PROJECT', 'blueprint-bench')}-{broker}"
        self.https_port, self.http_port = (port + PORT_OFFSET for port in PORTS[broker])
        BUILD.mkdir(parents=True, exist_ok=True)
        self.env_file = BUILD / f"{self.project}.env"
        self.agent_env = BUILD / f"{self.project}.agent.env"
        self.variants = ["compose/rabbitmq.yaml"] if broker == "rabbitmq" else []
        # The reference's pools (the env file's WORKER_POOLS), as `make up` writes them: write_pools().
        self.pools_file = BUILD / f"{self.project}-pools.yaml"
        files = ["-f", "compose/compose.yaml", *(a for v in self.variants for a in ("-f", v)),
                 "-f", str(self.pools_file), "-f", "bench/compose.bench.yaml"]
        self.base = ["docker", "compose", "-p", self.project, *files, "--env-file", str(self.env_file),
                     "--env-file", str(ROOT / "build" / "compose-images.env")]
        self.overrides: dict[str, str] = {}

    # --- plumbing ---------------------------------------------------------------------------------
    def _env(self, extra=None):
        env = dict(os.environ, PROXY_BIND="127.0.0.1", PROXY_HOSTNAME="localhost",
                   PROXY_HTTPS_PORT=str(self.https_port), PROXY_HTTP_PORT=str(self.http_port),
                   BENCH_AGENT_ENV=str(self.agent_env), COMPOSE_PROFILES="bench")
        env.update(self.overrides)
        env.update(extra or {})
        return env

    def compose(self, *args, extra_env=None, check=True, capture=True):
        result = subprocess.run([*self.base, *args], cwd=ROOT, env=self._env(extra_env), text=True,
                                capture_output=capture)
        if check and result.returncode:
            if capture:
                sys.stderr.write(result.stdout + result.stderr)
            raise RuntimeError(f"docker compose {' '.join(args)} failed ({result.returncode})")
        return result

    def exec_json(self, service: str, *argv: str) -> dict:
        """Run a command in a running service and parse the one JSON line it prints."""
        result = self.compose("exec", "-T", service, *argv, capture=True, check=False)
        if result.returncode:
            raise RuntimeError(f"{service}: {' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def popen_json(self, service: str, *argv: str):
        """Start a command in a service in the background; call the result to wait and parse its JSON."""
        proc = subprocess.Popen([*self.base, "exec", "-T", service, *argv], cwd=ROOT, env=self._env(),
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def wait():
            out, err = proc.communicate(timeout=600)
            if proc.returncode:
                raise RuntimeError(f"{service}: {' '.join(argv)} failed:\n{out}{err}")
            return json.loads(out.strip().splitlines()[-1])
        return wait

    # --- life cycle -------------------------------------------------------------------------------
    def write_env(self):
        self.env_file.unlink(missing_ok=True)
        subprocess.run(["compose/scripts/gen-env.sh", str(self.env_file)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        get = lambda name: env_value(self.env_file, name)  # noqa: E731
        database = f"postgres://{get('POSTGRES_USER') or 'app'}:{get('POSTGRES_PASSWORD')}@postgres:5432/{get('POSTGRES_DB') or 'app'}"
        if self.broker == "redis":
            broker = f"redis://:{get('REDIS_PASSWORD')}@redis:6379/0"
            backend = broker
        else:
            broker = f"amqp://{get('RABBITMQ_USER') or 'app'}:{get('RABBITMQ_PASSWORD')}@rabbitmq:5672/"
            backend = ""  # the baseline keeps Celery's default (no result backend) where Redis is absent
        lines = {
            "DJANGO_SECRET_KEY": get("DJANGO_SECRET_KEY"), "DJANGO_ALLOWED_HOSTS": "localhost",
            # No CELERY_RESULT_BACKEND: Celery itself reads that variable, and it would override the
            # baseline's choice; the shipped settings pick the broker's Redis or django-db themselves.
            "DATABASE_URL": database, "CELERY_BROKER_URL": broker, "BENCH_RESULT_BACKEND": backend,
            "MEDIA_ROOT": "/var/lib/app/media",
            "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", "PYTHONPATH": "/app:/bench",
            "BENCH_SINK_URL": "redis://sink:6379/0",
        }
        self.agent_env.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        self.agent_env.chmod(0o600)
        self.write_pools()

    def write_pools(self, **settings: str):
        """The pools file from the env file, with WORKER_<POOL>_* settings over it (as a user's env file would)."""
        override = BUILD / f"{self.project}.pools.env"
        override.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        subprocess.run([sys.executable, "compose/scripts/gen-pools.py", "--env-file", str(self.env_file),
                        "--env-file", str(override), *(a for v in self.variants for a in ("-f", v)),
                        "-o", str(self.pools_file)], cwd=ROOT, check=True)

    def up(self, *services, extra_env=None):
        self.compose("up", "-d", "--wait", "--wait-timeout", "240", "--quiet-pull", "--remove-orphans", *services, extra_env=extra_env)

    def start(self):
        self.down()
        self.write_env()
        began = time.monotonic()
        broker = ["redis"] if self.broker == "redis" else ["rabbitmq"]
        try:
            self.up(*broker, *BASE_SERVICES)
        except RuntimeError as exc:
            # On a saturated machine one health check can time out while a service starts (seen: web's
            # /readyz at load average 35 on 2 cores); `up --wait` again waits for it to recover.
            print(f"    {exc}; waiting for the stack once more", flush=True)
            self.up(*broker, *BASE_SERVICES)
        return round(time.monotonic() - began, 1)

    def recreate(self, service: str, **overrides: str):
        """(Re)create one service with BENCH_* / Compose variables set for it, and wait until healthy. A pool's
        WORKER_<POOL>_* settings go through the pools file (back to the env file's at the next recreate)."""
        self.write_pools(**{k: v for k, v in overrides.items() if k.startswith("WORKER_")})
        overrides = {k: v for k, v in overrides.items() if not k.startswith("WORKER_")}
        self.compose("up", "-d", "--wait", "--wait-timeout", "180", "--no-deps", "--force-recreate", service,
                     extra_env=overrides)

    def stop(self, *services):
        self.compose("stop", "--timeout", "20", *services)

    def down(self):
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False, capture=True)

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service, capture=True).stdout.split()

    def memory_mb(self, service: str) -> float:
        """Memory the service's container uses now (docker stats; cgroup v1 usage minus cache)."""
        ids = self.container_ids(service)
        out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids],
                             capture_output=True, text=True, check=True).stdout
        total = 0.0
        for line in out.splitlines():
            used = line.split("/")[0].strip()
            number, unit = float(used.rstrip("KMGiB")), used.lstrip("0123456789.")
            total += number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "B": 1 / 1048576}.get(unit, 1)
        return round(total, 1)

    def packets_sent(self, service: str) -> int:
        """Packets the service's containers have sent (every interface but loopback), read from the host's
        /proc so it works on a paused container: per task, about the broker and result-store round trips."""
        total = 0
        for cid in self.container_ids(service):
            pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", cid], capture_output=True,
                                 text=True, check=True).stdout.strip()
            for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]:
                name, fields = line.split(":", 1)
                if name.strip() != "lo":
                    total += int(fields.split()[9])  # the transmit side's packets
        return total

    def logs(self, tail=80):
        self.compose("logs", "--no-color", f"--tail={tail}", check=False, capture=False)
