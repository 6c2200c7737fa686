#!/usr/bin/env bash
# The generic smoke suite (tests/smoke, `-m "not reference"`) against the project the test fleet runs:
#   smoke.sh QUEUES     (the queues its worker pools consume, comma-separated)
# HTTPS through nginx on the web host (published on 127.0.0.1; its self-signed certificate, whose names
# include localhost, is the CA), probe tasks run in the web host's release with app-run.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
WORK=$PWD/build/ansible-test
WEB=fleet-web1
docker exec "$WEB" cat /etc/nginx/tls/app.crt >"$WORK/fleet-ca.crt"
port=$(docker port "$WEB" 443/tcp | head -1 | cut -d: -f2)
export SMOKE_BASE_URL="https://localhost:$port" SMOKE_CA_FILE="$WORK/fleet-ca.crt" SMOKE_HTTP_URL=""
export SMOKE_QUEUES=$1 SMOKE_EXEC="docker exec $WEB /usr/local/sbin/app-run"
export SMOKE_FLOWER_USER=admin SMOKE_FLOWER_PASSWORD
SMOKE_FLOWER_PASSWORD=$(.venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["vault_flower_password"])' "$WORK/secrets.yml")
echo "==> generic smoke suite: $SMOKE_BASE_URL, queues $SMOKE_QUEUES"
# Compose-only tests skip themselves (no SMOKE_COMPOSE).
.venv/bin/python -m pytest tests/smoke -p no:cacheprovider -q -rA --timeout 300 -m "not compose and not reference"
