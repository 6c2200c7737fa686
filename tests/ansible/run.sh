#!/usr/bin/env bash
# `make test-ansible`: the Ansible roles against a real multi-host fleet of systemd containers.
#  1. build what the hosts need (wheelhouse for Python 3.13, the object store binary, the fleet image)
#  2. start the fleet; deploy release 1 (site.yml); deploy again and require zero changes
#  3. testinfra on every host (incl. the firewall: an outsider is dropped, an app host admitted) + end to end through nginx
#  4. stop a worker host in the middle of queued work: the other one finishes it
#  5. deploy release 2 under 30 requests/s through nginx (zero failed, every gunicorn replaced);
#     roll back to release 1, check
#  6. deploy release 3 (adds a migration); a rollback must be refused, naming the migration
#  7. release 4 cannot start its web server: the rollout stops at the first web host, release 3 keeps serving
#  8. a second project (examples/bookshop) from its configuration file alone: a queue without a pool stops
#     the deploy, naming it; then deployed, and the generic smoke suite passes against it (as against
#     the reference project in step 3)
# The fleet is removed at the end, also on failure (KEEP_FLEET=1 keeps it for debugging).
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=$ROOT/build/ansible-test
SECRETS=$WORK/secrets.yml
INVENTORY=ansible/inventories/test/hosts.yml
PYTEST=(.venv/bin/python -m pytest -c tests/ansible/pytest.ini -p no:cacheprovider -q -rA --timeout 600)
START=$SECONDS
export PATH="$ROOT/.venv/bin:$PATH"

phase() { echo; echo "===== [$((SECONDS - START))s] $*"; }
cleanup() {
    local rc=$?
    cpu_report
    if [ "${KEEP_FLEET:-0}" = 1 ]; then echo "KEEP_FLEET=1: fleet left running"; else tests/ansible/fleet.sh down; fi
    echo "===== test-ansible finished in $((SECONDS - START))s (exit $rc)"
}
# CPU seconds the test used: on a shared 2-core machine the wall time mostly measures the other load,
# this does not. Hosts: their cgroup (v1 cpuacct, since the container last started); control machine:
# this script's children (ansible-playbook, pytest, docker CLI).
cpu_report() {
    local host id ns total=0 line=""
    for host in $(tests/ansible/fleet.sh hosts); do
        id=$(docker inspect -f '{{.Id}}' "$host" 2>/dev/null) || continue
        ns=$(cat "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage" 2>/dev/null) || continue
        line+=" $host=$((ns / 1000000000))s"; total=$((total + ns / 1000000000))
    done
    [ -z "$line" ] || echo "===== CPU used by the fleet: ${total}s ($line )"
    # times, not $(times): a subshell would report its own (empty) children.
    echo "===== CPU used on the control machine (user system; this script, then its children):"
    times
}
trap cleanup EXIT

# Source snapshots: what a release is built from (app/, deploykit/ with the LICENSE its own links to,
# the lock, the configuration contract).
snapshot() {
    local dest=$1
    rm -rf "$dest" && mkdir -p "$dest/requirements" "$dest/docs"
    tar -C "$ROOT" --exclude='__pycache__' --exclude='*.pyc' --exclude='app/media' --exclude='app/staticfiles' \
        --exclude='app/db.sqlite3*' --exclude='*.egg-info' --exclude='deploykit/build' --exclude='deploykit/dist' \
        -cf - app deploykit LICENSE | tar -C "$dest" -xf -
    cp requirements/app.lock "$dest/requirements/"
    cp docs/configuration.md "$dest/docs/"
}

# playbook SOURCE PLAYBOOK [extra args...]: tests/ansible/playbook.sh (also used by the tests that deploy);
# output in $WORK/last-run.log and $WORK/run-<n>-<playbook>.log.
playbook() { tests/ansible/playbook.sh "$@"; }
show_failure() { grep -E -A25 'fatal:|FAILED!|ERROR' "$WORK/last-run.log" | head -80 >&2 || tail -40 "$WORK/last-run.log" >&2; }
changed_count() { awk '/PLAY RECAP/{r=1;next} r && /changed=/{split($0,a,"changed=");split(a[2],b," ");s+=b[1]} END{print s+0}' "$WORK/last-run.log"; }
current_release() { docker exec "$1" readlink /srv/app/current | xargs basename; }

phase "build: wheelhouse, object store binary, fleet image"
mkdir -p "$WORK" && rm -rf "$WORK"/run-*.log "$WORK/facts"
scripts/setup/ensure-venv.sh
compose/images/app/build-wheelhouse.sh
compose/images/s3/build.sh binary
rm -f "$SECRETS" && .venv/bin/python tests/ansible/gen-secrets.py "$SECRETS"
snapshot "$WORK/src-1"

phase "fleet up"
tests/ansible/fleet.sh up

phase "deploy release 1 (site.yml)"
playbook "$WORK/src-1" site.yml || { show_failure; exit 1; }
grep -A6 'PLAY RECAP' "$WORK/last-run.log"
R1=$(current_release fleet-web1)

phase "deploy again: must change nothing"
playbook "$WORK/src-1" site.yml || { show_failure; exit 1; }
changes=$(changed_count)
if [ "$changes" != 0 ]; then
    echo "FAIL: the second run reported $changes changes:" >&2
    grep -E -B2 '^changed:' "$WORK/last-run.log" | grep -E '^(TASK|changed)' >&2
    exit 1
fi
echo "idempotent: changed=0 on every host"

phase "testinfra on every host, end to end through nginx"
"${PYTEST[@]}" tests/ansible/test_hosts.py tests/ansible/test_firewall.py tests/ansible/test_e2e.py
tests/ansible/smoke.sh default,io,images

phase "stop a worker host in the middle of queued work"
"${PYTEST[@]}" -s tests/ansible/test_worker_loss.py

phase "deploy release 2 under load: no request through nginx may fail"
snapshot "$WORK/src-2"
echo "release 2 of the Ansible test" >"$WORK/src-2/app/RELEASE-NOTE"
# The test runs the deploy itself (tests/ansible/playbook.sh ... deploy.yml) while it sends the load.
FLEET_RELEASE_SRC="$WORK/src-2" "${PYTEST[@]}" -s tests/ansible/test_web_rollout.py
R2=$(current_release fleet-web1)
[ "$R2" != "$R1" ] || { echo "FAIL: release 2 did not become current" >&2; exit 1; }
for h in fleet-web1 fleet-worker1 fleet-worker2; do [ "$(current_release $h)" = "$R2" ]; done
"${PYTEST[@]}" -m smoke tests/ansible/test_e2e.py

phase "roll back to release 1"
playbook "$WORK/src-2" rollback.yml || { show_failure; exit 1; }
for h in fleet-web1 fleet-worker1 fleet-worker2; do
    [ "$(current_release $h)" = "$R1" ] || { echo "FAIL: $h serves $(current_release $h), not $R1" >&2; exit 1; }
done
docker exec fleet-web1 systemctl show app-web -p ExecStart | grep -q "/releases/$R1/" \
    || { echo "FAIL: gunicorn does not run release $R1" >&2; exit 1; }
"${PYTEST[@]}" -m smoke tests/ansible/test_e2e.py

phase "deploy release 3 (one more migration); rolling back must be refused"
snapshot "$WORK/src-3"
echo "release 3 of the Ansible test" >"$WORK/src-3/app/RELEASE-NOTE"
latest=$(basename "$(ls "$WORK"/src-3/app/jobs/migrations/0*.py | sort | tail -1)" .py)
cat >"$WORK/src-3/app/jobs/migrations/0999_ansible_rollback_probe.py" <<PY
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("jobs", "$latest")]
    operations = []
PY
playbook "$WORK/src-3" deploy.yml || { show_failure; exit 1; }
R3=$(current_release fleet-web1)
if playbook "$WORK/src-3" rollback.yml; then
    echo "FAIL: rollback from $R3 succeeded although the database has a migration the target lacks" >&2; exit 1
fi
grep -q "Refusing to roll back to .*jobs.0999_ansible_rollback_probe" "$WORK/last-run.log" \
    || { show_failure; echo "FAIL: the refusal does not name the migration" >&2; exit 1; }
grep -o "Refusing to roll back[^.]*\.[^.]*\." "$WORK/last-run.log" | head -1
[ "$(current_release fleet-web1)" = "$R3" ] || { echo "FAIL: the refused rollback changed the release" >&2; exit 1; }
"${PYTEST[@]}" -m smoke tests/ansible/test_e2e.py

phase "release 4 fails its health check: the rollout stops, release 3 keeps serving everywhere"
snapshot "$WORK/src-4"
echo "release 4 of the Ansible test" >"$WORK/src-4/app/RELEASE-NOTE"
# The web server cannot start (wsgi import fails); management commands still work, so it gets that far.
printf '\nraise RuntimeError("release 4 is broken on purpose (Ansible rollout test)")\n' >>"$WORK/src-4/app/config/wsgi.py"
# A short check (a few seconds: the import fails at once); the rescue still waits for release 3 to answer.
if playbook "$WORK/src-4" deploy.yml -e web_health_retries=5 -e web_health_delay=1; then
    echo "FAIL: a release whose web server cannot start was rolled out" >&2; exit 1
fi
grep -q "failed its health check on fleet-web1" "$WORK/last-run.log" \
    || { show_failure; echo "FAIL: the rollout did not stop on the failed health check" >&2; exit 1; }
for h in fleet-web1 fleet-worker1 fleet-worker2; do
    [ "$(current_release $h)" = "$R3" ] || { echo "FAIL: $h switched to $(current_release $h)" >&2; exit 1; }
done
docker exec fleet-web1 systemctl show app-web -p ExecStart | grep -q "/releases/$R3/" \
    || { echo "FAIL: gunicorn was not put back on release $R3" >&2; exit 1; }
docker exec fleet-worker1 systemctl cat app-worker@.service | grep -q "/releases/$R3/" \
    || { echo "FAIL: the workers were touched by the failed rollout" >&2; exit 1; }
"${PYTEST[@]}" -m smoke tests/ansible/test_e2e.py

phase "a second project: examples/bookshop from its configuration alone (examples/bookshop/deploy/ansible.yml)"
BOOKSHOP=(-e "@$ROOT/examples/bookshop/deploy/ansible.yml")
# Without a pool for `emails` (its task's decorator routes there): the deploy must stop, naming the queue.
if playbook "$ROOT" site.yml "${BOOKSHOP[@]}" -e '{"app_worker_pools": [{"name": "main", "queues": "celery"}]}'; then
    echo "FAIL: the bookshop was deployed although no pool consumes its queue emails" >&2; exit 1
fi
grep -q "check_queues:.*emails" "$WORK/last-run.log" \
    || { show_failure; echo "FAIL: the refused deploy does not name the queue emails" >&2; exit 1; }
grep -o "check_queues:[^\"]*emails[^\"]*" "$WORK/last-run.log" | head -1
# With one variable of its own (app_env_project), which its running workers must get.
playbook "$ROOT" site.yml "${BOOKSHOP[@]}" -e '{"app_env_project": {"BOOKSHOP_FLEET_MARK": "shop-42"}}' \
    || { show_failure; exit 1; }
RB=$(current_release fleet-web1)
pid=$(docker exec fleet-worker1 systemctl show -p MainPID --value app-worker@main-1)
docker exec fleet-worker1 cat "/proc/$pid/environ" | tr '\0' '\n' | grep -qx "BOOKSHOP_FLEET_MARK=shop-42" \
    || { echo "FAIL: the bookshop's worker (pid $pid) lacks its own variable BOOKSHOP_FLEET_MARK" >&2; exit 1; }
# Its main pool autoscales (autoscale: "4,1" in its file).
docker exec fleet-worker1 cat "/proc/$pid/cmdline" | tr '\0' ' ' | grep -q -- "--autoscale 4,1" \
    || { echo "FAIL: the bookshop's main pool does not run with --autoscale 4,1" >&2; exit 1; }
for h in fleet-web1 fleet-worker1 fleet-worker2; do
    [ "$(current_release $h)" = "$RB" ] || { echo "FAIL: $h serves $(current_release $h), not the bookshop's $RB" >&2; exit 1; }
done
docker exec fleet-web1 test -f "/srv/app/releases/$RB/app/bookshop/wsgi.py" \
    || { echo "FAIL: release $RB is not the bookshop" >&2; exit 1; }
tests/ansible/smoke.sh celery,emails

phase "all Ansible checks passed (releases: $R1, $R2, $R3; the bookshop: $RB)"
