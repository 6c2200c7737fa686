#!/usr/bin/env bash
# Upgrade a running Compose stack to a new app image, release N to N+1 (docs/release.md#upgrading-on-compose):
#   1. check:    the image is here and the stack runs; nothing else is looked at before this passes
#   2. migrate:  the new image's one-off migrate step (deploykit-migrate: check_queues, check_tasks, migrate with
#                lock/statement timeouts, check_tasks --record); if it fails, the upgrade stops here with its last
#                log lines, and no running container was touched (N keeps serving, the images file names N)
#   3. record:   IMAGES_ENV names the new image (APP_IMAGE), so the stack's later commands keep it (make
#                rollout-web, scale-workers, rotate-secret; not make up, which builds and deploys the checkout's)
#   4. roll:     web, then each worker pool, new containers beside the old, the old stopping warmly (running tasks
#                finish within stop_grace_period); then beat (never two) and Flower, recreated (roll-services.sh)
#   5. verify:   every app container runs the new image
# N's code runs against N+1's schema during the roll, and N+1's workers run tasks N enqueued: migrations must be
# expand-only and task names kept (docs/release.md#migrations, #task-compatibility; the migrate step checks names).
# Settings (grace periods, timeouts, pools) come from the stack's configuration; this script only orders the steps.
# Usage: compose/scripts/upgrade.sh IMAGES_ENV IMAGE -- docker compose -p PROJECT -f FILE... (the stack's command)
#   IMAGES_ENV: the env file the stack's command reads the image names from (build/compose-images.env)
#   IMAGE:      the new app image, NAME:TAG, already present (make upgrade builds it, or takes APP_IMAGE=...)
set -o errexit -o pipefail -o nounset
here=$(dirname "$0")
usage="usage: $0 IMAGES_ENV IMAGE -- COMPOSE COMMAND..."
[ "$#" -ge 4 ] && [ "$3" = -- ] || { echo "$usage" >&2; exit 2; }
images_env=$1 image=$2
shift 3
compose=("$@")
# Every compose command below interpolates the new image: the shell's value wins over the env files'.
export APP_IMAGE=$image
APP_SERVICES=(web 'worker-.*' beat flower)
MIGRATE_LOG_LINES=${MIGRATE_LOG_LINES:-40}
say() { echo "==> [$SECONDS s] $*"; }
fail() { echo "ERROR: $1" >&2; exit "${2:-1}"; }  # fail MESSAGE [EXIT CODE]

check() {
  [ -n "$image" ] || fail "no image given: make upgrade APP_IMAGE=NAME:TAG, or make upgrade to build one ($usage)" 2
  [ -n "$images_env" ] || fail "no images env file given ($usage)" 2
  docker image inspect "$image" >/dev/null 2>&1 \
    || fail "image $image is not on this host (docker image ls; make upgrade without APP_IMAGE builds one)" 2
  local running
  running=$("${compose[@]}" ps --services --status running)
  grep -qx web <<<"$running" \
    || fail "the stack does not run (no web container): make up starts it; make upgrade replaces a running one" 2
  say "upgrading to $image ($(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}} {{.Id}}' "$image" | cut -c1-40))"
}

migrate() {
  local log status=0
  log=$(mktemp)
  say "migrate: $image's one-off migrate step (checks, then migrations); nothing is replaced before it passes"
  "${compose[@]}" run --rm --no-deps -T migrate >"$log" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    echo "==> the migrate step failed (exit $status); its last $MIGRATE_LOG_LINES lines:" >&2
    tail -n "$MIGRATE_LOG_LINES" "$log" | sed 's/^/    /' >&2
    rm -f "$log"
    fail "upgrade stopped before any service was replaced: every container still runs the release before $image"
  fi
  grep -E '^(check_|  Apply|No migrations)' "$log" | sed 's/^/    /' || true
  rm -f "$log"
}

# APP_IMAGE=IMAGE in the images env file, written beside it and renamed (a crash leaves the old file or the new).
record() {
  local tmp
  mkdir -p "$(dirname "$images_env")"
  tmp=$(mktemp "$images_env.XXXXXX")
  chmod 644 "$tmp"
  { if [ -f "$images_env" ]; then sed '/^APP_IMAGE=/d' "$images_env"; fi; echo "APP_IMAGE=$image"; } >"$tmp"
  mv "$tmp" "$images_env"
  say "record: $images_env names $image"
}

roll() {
  say "roll: ${APP_SERVICES[*]}, one after the other"
  "$here/roll-services.sh" "${APP_SERVICES[@]}" -- "${compose[@]}"
}

verify() {
  local want stale=() service cid pattern matches=()
  want=$(docker image inspect -f '{{.Id}}' "$image")
  for pattern in "${APP_SERVICES[@]}"; do matches+=(-e "$pattern"); done
  for service in $("${compose[@]}" ps --services --status running | grep -x "${matches[@]}"); do
    for cid in $("${compose[@]}" ps -q "$service"); do
      [ "$(docker inspect -f '{{.Image}}' "$cid")" = "$want" ] || stale+=("$service/${cid:0:12}")
    done
  done
  [ "${#stale[@]}" = 0 ] || fail "still on another image: ${stale[*]}"
  say "upgraded: every app container runs $image"
}

check
migrate
record
roll
verify
