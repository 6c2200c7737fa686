#!/usr/bin/env bash
# A throw-away OCI registry on 127.0.0.1 for release tests: Debian's docker-registry package (CNCF
# distribution, the reference implementation) run as a plain process with its own config and storage
# in DIR, never the package's system service (which listens on every interface on :5000).
# dockerd treats 127.0.0.0/8 registries as insecure-allowed, and helm reaches it with --plain-http.
# Usage: local-registry.sh start DIR   prints the address (127.0.0.1:PORT, also in DIR/address) once it answers
#        local-registry.sh stop DIR    stops it (DIR/pid) and keeps DIR for post-mortems
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."

start() {
  local dir=$1
  if ! command -v docker-registry >/dev/null; then
    scripts/setup/apt-install.sh --no-recommends "the local OCI registry of the release test" docker-registry >&2
    # On a systemd host the package starts its own service, on every interface: keep it off.
    if [ -d /run/systemd/system ]; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
  fi
  mkdir -p "$dir/storage"
  # A free port chosen by the kernel: parallel checkouts and other suites never collide.
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # No auth (the test runs on loopback only); deletes enabled so a test can remove a manifest.
  cat >"$dir/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/storage}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
YAML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null 2>/dev/null "http://127.0.0.1:$port/v2/"; then
      echo "127.0.0.1:$port" | tee "$dir/address"
      return 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "ERROR: the registry did not answer on 127.0.0.1:$port; its log:" >&2
  tail -20 "$dir/registry.log" >&2
  stop "$dir"
  return 1
}

stop() {
  local dir=$1
  [ -f "$dir/pid" ] || return 0
  kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -f "$dir/pid" "$dir/address"
}

case "${1:-}" in
  start | stop) [ $# -eq 2 ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }; "$1" "$(realpath -m "$2")" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
