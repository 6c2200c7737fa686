#!/usr/bin/env bash
# After a failed start: each service that exited with an error, is unhealthy or keeps restarting, with
# its last log lines, so `make up` says why instead of "service X didn't complete successfully".
# A database that refuses the env file's password gets the way out (docs/compose.md#credentials-and-data).
# Usage: compose/scripts/show-failed.sh docker compose -p PROJECT -f FILE... (the stack's compose command)
set -o pipefail -o nounset
compose=("$@")
LINES=${SHOW_FAILED_LINES:-40}
failed=0
# '|', not a tab: read merges runs of whitespace separators, and an empty health field would vanish.
while IFS='|' read -r service state health code; do
    case "$state/$health/$code" in
        exited/*/0 | running/healthy/* | running//*) continue ;;  # done, healthy, or no health check
    esac
    failed=1
    echo "==> $service: $state${health:+ ($health)}${code:+, exit $code}; its last $LINES log lines:" >&2
    logs=$("${compose[@]}" logs --no-color --no-log-prefix --tail "$LINES" "$service" 2>&1)
    printf '%s\n' "$logs" | sed 's/^/    /' >&2
    if grep -q 'password authentication failed' <<<"$logs"; then
        echo "==> The database refuses the password in the env file: its data was made with another one." >&2
        echo "    Put back the env file that created it, or delete the data with 'make down V=1' (lost for good)." >&2
    fi
done < <("${compose[@]}" ps -a --format '{{.Service}}|{{.State}}|{{.Health}}|{{.ExitCode}}')
[ "$failed" = 1 ] || echo "==> no service exited or is unhealthy (a start that timed out: 'make ps', 'make logs')" >&2
exit 0
