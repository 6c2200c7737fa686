#!/usr/bin/env bash
# Run one playbook against the test fleet, as run.sh and the tests that deploy do:
#   playbook.sh SOURCE PLAYBOOK [extra ansible-playbook args...]
# SOURCE is a release snapshot (run.sh's snapshot). Output in $WORK/last-run.log, also kept per run
# as $WORK/run-<n>-<playbook>.log (with per-task timings, to see where a slow run spent its time).
# Facts are cached between runs (gathering=smart then skips them): the fleet's hosts keep their
# addresses for the whole test; run.sh clears the cache when it starts a new fleet.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=$ROOT/build/ansible-test
INVENTORY=inventories/test/hosts.yml
src=$1 book=$2
shift 2
runs=$(find "$WORK" -maxdepth 1 -name 'run-*.log' | wc -l)
rc=0
(cd ansible && ANSIBLE_FORCE_COLOR=0 ANSIBLE_CALLBACK_RESULT_FORMAT=json \
    ANSIBLE_CACHE_PLUGIN=jsonfile ANSIBLE_CACHE_PLUGIN_CONNECTION="$WORK/facts" ANSIBLE_CACHE_PLUGIN_TIMEOUT=7200 \
    ../.venv/bin/ansible-playbook -i "$INVENTORY" -e "@$WORK/secrets.yml" \
    -e "app_source_dir=$src" -e "app_wheelhouse_dir=$ROOT/build/wheelhouse" "$@" "$book") \
    >"$WORK/last-run.log" 2>&1 || rc=$?
cp "$WORK/last-run.log" "$WORK/run-$((runs + 1))-${book%.yml}.log"
exit $rc
