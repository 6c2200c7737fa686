"""The machine a run came from: the figures mean little without it."""
import os
import platform
import subprocess
from datetime import datetime, timezone


def describe() -> dict:
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    return {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 1048576, 1),
        "kernel": platform.release(), "os": platform.freedesktop_os_release().get("PRETTY_NAME", ""),
        "docker": docker.stdout.strip(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
