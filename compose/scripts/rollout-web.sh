#!/usr/bin/env bash
# Replace the web container(s) without a failed request: start a new one beside each old one, wait until
# it is healthy, then stop the old. The proxy dials the name `web`, which resolves to every web container:
# a stopping one refuses at once (it closes its listener first, deploykit/ops/gunicorn_drain.py) and the dial
# goes on to the next address, so no request reaches a closed port. Compose's own recreate stops the
# old container first, and requests that arrive meanwhile fail (issue 16).
# ROLLOUT_SERVICE=worker-<pool> rolls a worker pool the same way (compose/scripts/rotate-secret.sh): the new
# containers consume beside the old, which then stop warmly (running tasks finish, stop_grace_period).
# Usage: compose/scripts/rollout-web.sh docker compose -p PROJECT -f FILE... (the stack's compose command)
set -o errexit -o pipefail -o nounset
compose=("$@")
service=${ROLLOUT_SERVICE:-web}
mapfile -t old < <("${compose[@]}" ps -q "$service")
if [ "${#old[@]}" = 0 ]; then
    echo "==> no $service container runs: nothing to roll (make up starts the stack)"
    exit 0
fi
echo "==> starting ${#old[@]} new $service container(s) beside the old"
"${compose[@]}" up -d --wait --no-deps --no-recreate --scale "$service=$((2 * ${#old[@]}))" "$service"
# docker stop waits the container's own stop_grace_period (set by Compose) before SIGKILL.
echo "==> stopping the old $service container(s)"
docker stop "${old[@]}" >/dev/null
docker rm "${old[@]}" >/dev/null
