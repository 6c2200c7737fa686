#!/usr/bin/env bash
# The Ansible test fleet: Debian 13 containers running systemd, on their own Docker network.
#   fleet.sh up     build the image when missing, (re)create the fleet, wait until systemd runs everywhere
#   fleet.sh down   remove the containers and the network
#   fleet.sh hosts  list the container names
# No --privileged (not available here): systemd needs SYS_ADMIN, no seccomp filter, tmpfs on /run and
# the host's cgroup tree read-only; the firewall role's nftables needs NET_ADMIN (in the container's own
# network namespace only). Only the web host's HTTPS port is published, on 127.0.0.1.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
NETWORK=${FLEET_NETWORK:-blueprint-fleet}
IMAGE=${FLEET_IMAGE:-blueprint/systemd-host:trixie}
BASE_IMAGE=${BASE_IMAGE:-blueprint/debian:trixie}
HOSTS=(fleet-infra fleet-web1 fleet-worker1 fleet-worker2)
WEB=fleet-web1

build_image() {
    local context=tests/ansible/images/systemd-host sha
    sha=$(cat "$context"/* | sha256sum | cut -c1-16)
    if [ "$(docker image inspect -f '{{index .Config.Labels "blueprint.context-sha"}}' "$IMAGE" 2>/dev/null)" = "$sha" ]; then
        return 0
    fi
    compose/images/debian/build.sh
    echo "==> building $IMAGE"
    docker build -q -t "$IMAGE" --build-arg BASE_IMAGE="$BASE_IMAGE" --label "blueprint.context-sha=$sha" "$context" >/dev/null
}

up() {
    build_image
    down
    create_network
    local host publish n=10
    for host in "${HOSTS[@]}"; do
        publish=()
        [ "$host" = "$WEB" ] && publish=(--publish 127.0.0.1::443)
        n=$((n + 1))
        docker run -d --name "$host" --hostname "$host" --network "$NETWORK" --ip "$PREFIX.$n" "${publish[@]}" \
            --cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt seccomp=unconfined \
            --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
            --label blueprint.fleet=1 "$IMAGE" >/dev/null
    done
    for host in "${HOSTS[@]}"; do wait_running "$host"; done
    echo "==> fleet up: ${HOSTS[*]} (HTTPS of $WEB on $(docker port "$WEB" 443/tcp | head -1))"
}

# Each host keeps its address across `docker stop`/`start` (the worker-loss test restarts one), as a VM's
# private address does: the firewall and pg_hba on the database host admit the app hosts by address.
# A fixed address needs a network with a subnet of its own: take the one Docker picks (free on this
# machine), then create the network again with that subnet stated; hosts get .11, .12, ...
create_network() {
    local subnet
    docker network create "$NETWORK" >/dev/null
    subnet=$(docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' "$NETWORK")
    docker network rm "$NETWORK" >/dev/null
    docker network create --subnet "$subnet" "$NETWORK" >/dev/null
    PREFIX=$(echo "$subnet" | cut -d/ -f1 | cut -d. -f1-3)
    case $subnet in */1[6-9]|*/2[0-4]) ;; *) echo "ERROR: unexpected subnet $subnet for $NETWORK" >&2; return 1 ;; esac
}

# systemd reports "running" (or "degraded" when some unit failed, which the tests then show).
wait_running() {
    local state=""
    for _ in $(seq 1 60); do
        state=$(docker exec "$1" systemctl is-system-running 2>/dev/null || true)
        case $state in running|degraded) return 0 ;; esac
        sleep 0.5
    done
    echo "ERROR: systemd in $1 did not come up (state: ${state:-none})" >&2
    docker logs --tail 30 "$1" >&2 || true
    return 1
}

down() {
    local ids
    ids=$(docker ps -aq --filter label=blueprint.fleet=1)
    # -t: give systemd time to stop the services cleanly (it is PID 1 and handles SIGRTMIN+3).
    [ -z "$ids" ] || { docker stop -t 20 $ids >/dev/null; docker rm -f $ids >/dev/null; }
    docker network rm "$NETWORK" >/dev/null 2>&1 || true
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    hosts) printf '%s\n' "${HOSTS[@]}" ;;
    *) echo "usage: $0 up|down|hosts" >&2; exit 2 ;;
esac
