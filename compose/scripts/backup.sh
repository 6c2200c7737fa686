#!/usr/bin/env bash
# Back up and restore the Compose stack (docs/backup.md). The work is done by the backup program
# (compose/images/backup/backup.py, the `backup` service), the same one the chart and Ansible run; this
# wrapper only adds what is Compose's: which containers write data, stopping and starting them.
#   backup         the database and the media (volume, or the bucket in S3 mode), encrypted, to BACKUP_S3_*
#   list           the complete backups in the store
#   restore [ID]   (default: the newest)
#                  1. verify: download, checksums, decrypt, read the dump -- a backup that cannot be restored
#                     is refused here, with the stack still running and nothing changed
#                  2. stop every service that uses the database or the media (web, worker pools, beat,
#                     Flower, the PostgreSQL exporter): nothing writes while the data is replaced
#                  3. restore: the database in one transaction, the media swapped in after it
#                  4. start them again and wait until healthy; prints the recovery time of each step
#                  If step 3 fails, the services stay stopped (the database is unchanged: its transaction
#                  rolled back); the message says how to start them again.
# Usage: compose/scripts/backup.sh backup|list|restore [ID] -- docker compose -p PROJECT -f FILE... (the stack's)
set -o errexit -o pipefail -o nounset
action=${1:?usage: $0 backup|list|restore [ID] -- COMPOSE COMMAND...}
shift
id=
if [ "$#" -gt 0 ] && [ "$1" != -- ]; then id=$1; shift; fi
[ "${1:-}" = -- ] && [ "$#" -gt 1 ] || { echo "usage: $0 backup|list|restore [ID] -- COMPOSE COMMAND..." >&2; exit 2; }
shift
compose=("$@")
say() { echo "==> $*"; }

# BACKUP_RESTORE_REPORT=checksums (docs/backup.md): the restore prints every table's rows and checksum at commit.
backup_run() {
  "${compose[@]}" run --rm --no-TTY ${BACKUP_RESTORE_REPORT:+-e BACKUP_RESTORE_REPORT="$BACKUP_RESTORE_REPORT"} backup "$@"
}

case $action in
  backup) backup_run backup ;;
  list) backup_run list ;;
  verify) backup_run verify ${id:+"$id"} ;;
  restore)
    started=$SECONDS
    say "restore, step 1/4: verifying backup ${id:-(the newest)} while the stack runs"
    backup_run verify ${id:+"$id"}
    verified=$((SECONDS - started))
    # Every running service whose configuration reaches the database or the media volume, except the
    # database itself and the backup program.
    mapfile -t writers < <("${compose[@]}" config --format json | python3 -c '
import json, sys
services = json.load(sys.stdin)["services"]
for name, s in sorted(services.items()):
    if name in ("postgres", "backup"):
        continue
    text = json.dumps(s.get("environment") or {})
    mounts = [v.get("source") for v in s.get("volumes") or []]
    if "@postgres:" in text or "postgres:5432" in text or "media" in mounts:
        print(name)')
    mapfile -t running < <("${compose[@]}" ps --services --status running)
    stop=()
    for service in "${writers[@]}"; do
      for r in "${running[@]}"; do [ "$r" = "$service" ] && stop+=("$service"); done
    done
    step=$SECONDS
    say "restore, step 2/4: stopping what writes data: ${stop[*]:-(nothing running)}"
    [ "${#stop[@]}" -eq 0 ] || "${compose[@]}" stop "${stop[@]}"
    stopped=$((SECONDS - step))
    step=$SECONDS
    say "restore, step 3/4: restoring"
    if ! backup_run restore ${id:+"$id"}; then
      echo "ERROR: the restore failed; these services are still stopped: ${stop[*]:-none}." >&2
      echo "       Fix the cause and run the restore again, or start them on the data as it is now with:" >&2
      echo "       ${compose[*]} up -d --wait ${stop[*]:-}" >&2
      exit 1
    fi
    restored=$((SECONDS - step))
    step=$SECONDS
    say "restore, step 4/4: starting ${stop[*]:-nothing} again"
    [ "${#stop[@]}" -eq 0 ] || "${compose[@]}" up -d --wait --wait-timeout 240 --no-deps "${stop[@]}"
    say "recovery time: $((SECONDS - started)) s (verify $verified s, stop $stopped s," \
      "restore $restored s, start $((SECONDS - step)) s)"
    ;;
  *) echo "unknown action $action (backup, list, verify, restore)" >&2; exit 2 ;;
esac
