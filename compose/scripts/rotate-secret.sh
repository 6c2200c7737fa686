#!/usr/bin/env bash
# Rotate the stack's service credentials without downtime (docs/configuration.md#rotating-secrets):
#   1. add:    the new credential is made valid beside the old one
#   2. switch: ENV_FILE gets the new value (nothing else holds it)
#   3. roll:   every app process is replaced, each new one started with the new credential before the old stops
#   4. retire: the old credential is refused from now on
# Neither PostgreSQL nor RabbitMQ gives one user two passwords, and ALTER ROLE / change_password refuse the
# old one at once: old containers opening a connection during the roll would fail. So the app alternates
# between two login users (POSTGRES_USER and POSTGRES_USER_alt, RABBITMQ_USER and RABBITMQ_USER_alt); the
# PostgreSQL one becomes the owner role at login (ALTER ROLE ... SET role), so what it creates is owned as
# before. Redis' default user holds both passwords during the switch. Flower's basic-auth has no second
# password: it restarts (a few seconds without the UI; no task or request depends on it).
# If a step fails after the switch, both credentials stay valid: fix the cause, then finish with
#   ROTATE_STEPS="roll retire" compose/scripts/rotate-secret.sh ENV_FILE NAME... -- COMPOSE...
# Usage: compose/scripts/rotate-secret.sh ENV_FILE NAME... -- docker compose -p PROJECT -f FILE... (the stack's)
#   NAME: POSTGRES_PASSWORD REDIS_PASSWORD RABBITMQ_PASSWORD FLOWER_PASSWORD (several in one go share one roll)
set -o errexit -o pipefail -o nounset
here=$(dirname "$0")
env_file=$1
shift
names=()
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do names+=("$1"); shift; done
[ "$#" -gt 1 ] || { echo "usage: $0 ENV_FILE NAME... -- COMPOSE COMMAND..." >&2; exit 2; }
shift
compose=("$@")
steps=${ROTATE_STEPS:-add switch roll retire}
say() { echo "==> $*"; }

get() { sed -n "s/^$1=//p" "$env_file" | tail -n1; }

# Replace (or append) NAME=VALUE in the env file: written beside it and renamed, so a crash leaves the old
# file or the new one, never half of one; mode 600 like gen-env.sh's.
set_var() {
  local tmp
  tmp=$(mktemp "$env_file.XXXXXX")
  chmod 600 "$tmp"
  awk -v name="$1" -v value="$2" 'BEGIN { done = 0 }
    index($0, name "=") == 1 { if (!done) print name "=" value; done = 1; next }
    { print } END { if (!done) print name "=" value }' "$env_file" >"$tmp"
  mv "$tmp" "$env_file"
}

# Alphanumeric, as gen-env.sh makes them: the values go into URLs unescaped.
random_secret() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true; }

# SQL on stdin, as the owner role over the container's local socket (trusted there): no password needed, and
# none on a command line.
psql_owner() { "${compose[@]}" exec -T postgres sh -c 'psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d "$POSTGRES_DB"'; }

# Redis commands on stdin (AUTH first); any reply but OK fails.
redis_commands() {
  local out
  out=$("${compose[@]}" exec -T redis redis-cli --no-auth-warning)
  if grep -qv '^OK$' <<<"$out"; then echo "ERROR: redis answered: $out" >&2; return 1; fi
}

rabbitmqctl() { "${compose[@]}" exec -T rabbitmq rabbitmqctl --quiet "$@" </dev/null; }
# Set USER's password (add_user or change_password) read from stdin: the password is on rabbitmqctl's command
# line inside the broker's container only. (rabbitmqctl reading it from stdin itself hung under `exec -T`.)
rabbitmq_password() {
  "${compose[@]}" exec -T rabbitmq sh -c 'read -r pw; exec rabbitmqctl --quiet "$1" "$2" "$pw" </dev/null' sh "$1" "$2"
}

# The login user the app uses now, and the other one of the pair.
login_user() { local v; v=$(get "${1}_LOGIN_USER"); echo "${v:-$(owner "$1")}"; }
owner() { local v; v=$(get "${1}_USER"); echo "${v:-app}"; }
other_user() { if [ "$(login_user "$1")" = "$(owner "$1")" ]; then echo "$(owner "$1")_alt"; else owner "$1"; fi; }

declare -A new
add() {
  local name=$1 value
  value=$(random_secret)
  new[$name]=$value
  case $name in
    POSTGRES_PASSWORD)
      local role owner_role
      role=$(other_user POSTGRES) owner_role=$(owner POSTGRES)
      say "PostgreSQL: login role $role gets the new password ($(login_user POSTGRES) keeps the old until retired)"
      {
        printf 'DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE "%s" LOGIN IN ROLE "%s"; END IF; END $$;\n' \
          "'$role'" "$role" "$owner_role"
        printf 'ALTER ROLE "%s" WITH LOGIN PASSWORD %s;\n' "$role" "'$value'"
        if [ "$role" != "$owner_role" ]; then printf 'ALTER ROLE "%s" SET role TO %s;\n' "$role" "'$owner_role'"; fi
      } | psql_owner ;;
    REDIS_PASSWORD)
      say "Redis: the default user accepts the new password beside the old (saved to the ACL file)"
      printf 'AUTH %s\nACL SETUSER default >%s\nACL SAVE\n' "$(get REDIS_PASSWORD)" "$value" | redis_commands ;;
    RABBITMQ_PASSWORD)
      local user
      user=$(other_user RABBITMQ)
      say "RabbitMQ: user $user gets the new password ($(login_user RABBITMQ) keeps the old until retired)"
      if rabbitmqctl list_users | awk '{print $1}' | grep -qx "$user"; then
        printf '%s\n' "$value" | rabbitmq_password change_password "$user"
      else
        printf '%s\n' "$value" | rabbitmq_password add_user "$user"
        rabbitmqctl set_permissions -p / "$user" '.*' '.*' '.*'
      fi
      # web reads the management API as the login user (DEPLOYKIT_RABBITMQ_MANAGEMENT_URL): the tag it needs.
      if [ "$user" != "$(owner RABBITMQ)" ]; then rabbitmqctl set_user_tags "$user" management; fi ;;
    FLOWER_PASSWORD) ;;  # no second password: the switch is Flower's restart in the roll
  esac
}

switch() {
  local name=$1
  [ -n "${new[$name]:-}" ] || { echo "ERROR: switch without add in the same run" >&2; exit 2; }
  case $name in
    POSTGRES_PASSWORD | RABBITMQ_PASSWORD)
      local kind=${name%_PASSWORD} user
      user=$(other_user "$kind")
      # The owner is the default: the variable stays empty when the app logs in as it.
      set_var "${kind}_LOGIN_USER" "$([ "$user" = "$(owner "$kind")" ] || echo "$user")" ;;
  esac
  set_var "$name" "${new[$name]}"
  say "$env_file: new $name"
}

# Every running app process, replaced (roll-services.sh): web and each worker pool new-beside-old, beat
# stopped before its successor starts (never two), Flower recreated. The observability profile's exporters hold
# the broker's and database's passwords too (stateless: recreated). One-off services (migrate) take the new
# value at their next run. Flower's password alone changes Flower's configuration only: the rest keeps running.
roll() {
  if [ "${names[*]}" = FLOWER_PASSWORD ]; then
    "$here/roll-services.sh" flower -- "${compose[@]}"
  else
    "$here/roll-services.sh" web 'worker-.*' beat redis-exporter postgres-exporter flower -- "${compose[@]}"
  fi
}

retire() {
  local name=$1
  case $name in
    POSTGRES_PASSWORD)
      local role
      role=$(other_user POSTGRES)
      say "PostgreSQL: role $role's password removed (password logins as it refused)"
      printf 'ALTER ROLE "%s" PASSWORD NULL;\n' "$role" | psql_owner ;;
    REDIS_PASSWORD)
      say "Redis: every password of the default user but the new one removed (saved to the ACL file)"
      local value
      value=$(get REDIS_PASSWORD)
      printf 'AUTH %s\nACL SETUSER default resetpass >%s\nACL SAVE\n' "$value" "$value" | redis_commands ;;
    RABBITMQ_PASSWORD)
      local user
      user=$(other_user RABBITMQ)
      say "RabbitMQ: user $user's password cleared (password logins as it refused)"
      rabbitmqctl clear_password "$user" ;;
  esac
}

[ "${#names[@]}" -gt 0 ] || { echo "usage: $0 ENV_FILE NAME... -- COMPOSE COMMAND..." >&2; exit 2; }
# Every name checked before anything changes.
for name in "${names[@]}"; do
  case $name in
    POSTGRES_PASSWORD | REDIS_PASSWORD | RABBITMQ_PASSWORD | FLOWER_PASSWORD) ;;
    *) echo "ERROR: cannot rotate $name (POSTGRES_PASSWORD, REDIS_PASSWORD, RABBITMQ_PASSWORD or FLOWER_PASSWORD)" >&2
       exit 2 ;;
  esac
done
for step in $steps; do
  case $step in
    roll) roll ;;
    add | switch | retire) for name in "${names[@]}"; do "$step" "$name"; done ;;
    *) echo "ERROR: unknown step $step (add switch roll retire)" >&2; exit 2 ;;
  esac
done
say "rotated: ${names[*]}"
