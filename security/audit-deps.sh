#!/usr/bin/env bash
# pip-audit over every lock (requirements/*.lock, security/scanners.lock): a known vulnerability fails
# the run unless security/audit-exceptions.txt lists its ID with a reason.
# --strict: a package the vulnerability service could not look up fails the run too, so an unreachable
# or partial service never reads as "No known vulnerabilities found".
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
EXCEPTIONS=security/audit-exceptions.txt
ignore=()
while read -r id reason; do
  case "$id" in '' | '#'*) continue ;; esac
  [ -n "$reason" ] || { echo "ERROR: $EXCEPTIONS: $id has no reason" >&2; exit 1; }
  ignore+=(--ignore-vuln "$id")
done <"$EXCEPTIONS"
status=0
for lock in requirements/*.lock security/scanners.lock; do
  echo "==> pip-audit $lock"
  # The locks are fully pinned with hashes: audit them as written, without resolving or installing.
  .tools/scanners/bin/pip-audit --strict --progress-spinner off --disable-pip --require-hashes \
    ${ignore[@]+"${ignore[@]}"} -r "$lock" || status=1
done
exit "$status"
