"""A real pgbouncer process configured like the Helm chart's (its [pgbouncer] settings are read from the
chart's ConfigMap template and values.yaml), in front of the suite's PostgreSQL, on a free port."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml
from app_services import REPO, _die_with_parent, free_port, port_open, stop_process, wait_for

CHART = REPO / "helm" / "django-celery"
# Lines of the chart's ini that only describe the pod (addresses, mounted files): replaced here.
LOCAL_KEYS = {"listen_addr", "listen_port", "unix_socket_dir", "auth_file"}
PASSWORD = "pgbouncer-test-password"


def chart_pgbouncer_settings() -> dict[str, str]:
    """The [pgbouncer] section of the chart's pgbouncer.ini, with the chart's default values filled in."""
    template = (CHART / "templates" / "pgbouncer" / "pgbouncer-configmap.yaml").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())["pgbouncer"]
    section = template.split("[pgbouncer]", 1)[1]
    found: dict[str, str] = {}
    for line in section.splitlines():
        match = re.match(r"\s*([a-z_]+)\s*=\s*(.*?)\s*$", line)
        if not match or match[1] in LOCAL_KEYS:
            continue
        value = re.sub(r"\{\{\s*\$b\.(\w+)\s*\}\}", lambda m: str(values[m[1]]), match[2])
        assert "{{" not in value, f"unrendered template in the chart's pgbouncer.ini: {line}"
        found[match[1]] = value
    return found


class PgBouncer:
    def __init__(self, postgres, database: str):
        self.postgres = postgres
        self.database = database
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"app-tests-pgbouncer-{self.port}-"))
        self.settings = chart_pgbouncer_settings()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres:{PASSWORD}@127.0.0.1:{self.port}/{self.database}"

    def start(self):
        ini = self.dir / "pgbouncer.ini"
        lines = ["[databases]",
                 f"{self.database} = host=127.0.0.1 port={self.postgres.port} dbname={self.database}",
                 "[pgbouncer]", "listen_addr = 127.0.0.1", f"listen_port = {self.port}", "unix_socket_dir =",
                 f"auth_file = {self.dir / 'userlist.txt'}", f"logfile = {self.dir / 'pgbouncer.log'}",
                 *(f"{key} = {value}" for key, value in self.settings.items())]
        ini.write_text("\n".join(lines) + "\n")
        (self.dir / "userlist.txt").write_text(f'"postgres" "{PASSWORD}"\n')
        command = [shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", str(ini)]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root: it switches to postgres itself
            pw = pwd.getpwnam("postgres")
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            command.insert(1, "--user=postgres")
        self.proc = subprocess.Popen(command, stdout=open(self.dir / "stdout.log", "wb"), stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        wait_for(lambda: self.proc.poll() is None and port_open(self.port), 30, f"pgbouncer on port {self.port}")
        return self

    def stop(self):
        if self.proc:
            stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
