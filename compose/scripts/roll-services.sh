#!/usr/bin/env bash
# Replace the running containers of the named services, one service after the other in the order given, so
# that each new one starts with the stack's current configuration (a new image: upgrade.sh; a new password:
# rotate-secret.sh). A name is a pattern matched against the whole service name (`worker-.*`: every pool);
# a service with no running container is skipped (its next start takes the new configuration anyway).
#   web, worker-<pool>: new beside old (rollout-web.sh): the proxy keeps a ready web to dial, a pool keeps
#                       consuming; the old containers then stop warmly within their stop_grace_period
#                       (running tasks finish; compose/compose.yaml sizes it above the hard task time limit).
#   any other (beat, Flower, exporters): recreated, the old stopped before the new starts: beat never runs twice.
# Usage: compose/scripts/roll-services.sh SERVICE_PATTERN... -- docker compose -p PROJECT -f FILE... (the stack's)
set -o errexit -o pipefail -o nounset
here=$(dirname "$0")
patterns=()
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do patterns+=("$1"); shift; done
[ "$#" -gt 1 ] || { echo "usage: $0 SERVICE_PATTERN... -- COMPOSE COMMAND..." >&2; exit 2; }
shift
compose=("$@")

running=$("${compose[@]}" ps --services --status running)
for pattern in "${patterns[@]}"; do
  for service in $(grep -x -e "$pattern" <<<"$running" || true); do
    case $service in
      web | worker-*) ROLLOUT_SERVICE=$service "$here/rollout-web.sh" "${compose[@]}" ;;
      *) echo "==> recreating $service"
         "${compose[@]}" up -d --wait --no-deps "$service" ;;
    esac
  done
done
