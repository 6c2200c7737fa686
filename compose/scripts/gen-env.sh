#!/usr/bin/env bash
# Make sure the Compose env file exists and holds real secrets.
#   missing       -> copy .env.example, fill every empty secret with a fresh random value, say so;
#                    refused when PROJECT (the Compose project) already has data volumes: their
#                    passwords are the old env file's, and new ones would not open them
#   present       -> refuse a missing, empty or placeholder secret, naming the variable
# Usage: compose/scripts/gen-env.sh [ENV_FILE [PROJECT]]   (default .env; the test stack uses its own file)
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
ENV_FILE=${1:-.env}
PROJECT=${2:-}
SECRETS="DJANGO_SECRET_KEY POSTGRES_PASSWORD REDIS_PASSWORD RABBITMQ_PASSWORD FLOWER_PASSWORD DJANGO_SUPERUSER_PASSWORD"
SECRETS+=" DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"
# Secrets that open no existing data (docs/backup.md): generated into an existing env file too when it lacks them
# (one written before backups existed), instead of refusing it.
ADDED_SECRETS="BACKUP_PASSPHRASE BACKUP_S3_ACCESS_KEY_ID BACKUP_S3_SECRET_ACCESS_KEY"
SECRETS+=" $ADDED_SECRETS"
# Same spirit as the app's list (deploykit/src/deploykit/config/env.py): values nobody should deploy with.
PLACEHOLDERS="change-me changeme change_me secret password admin insecure example default test xxx todo flower guest postgres redis rabbitmq"

# Alphanumeric only: the values are embedded in URLs (DATABASE_URL, CELERY_BROKER_URL) unescaped.
random_secret() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1" || true; }

if [ ! -f "$ENV_FILE" ] && [ -n "$PROJECT" ] && command -v docker >/dev/null; then
  volumes=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null | tr '\n' ' ')
  if [ -n "$volumes" ]; then
    echo "ERROR: $ENV_FILE is missing, but the stack '$PROJECT' has data volumes ($volumes): they were made" \
      "with the passwords of the env file that created them, and fresh ones would not open them." >&2
    echo "       Put that env file back as $ENV_FILE, or delete the stack's data for good with" \
      "'make down V=1' and run 'make up' again (docs/compose.md#credentials-and-data)." >&2
    exit 1
  fi
fi

if [ ! -f "$ENV_FILE" ]; then
  umask 077
  while IFS= read -r line; do
    name=${line%%=*}
    if [[ "$line" =~ ^[A-Z0-9_]+=$ ]] && [[ " $SECRETS " == *" $name "* ]]; then
      if [ "$name" = DJANGO_SECRET_KEY ]; then line="$name=$(random_secret 64)"; else line="$name=$(random_secret 32)"; fi
    fi
    printf '%s\n' "$line"
  done <.env.example >"$ENV_FILE"
  echo "==> created $ENV_FILE from .env.example with fresh random secrets (keep it private; it is gitignored)"
fi

for name in $ADDED_SECRETS; do
  if [ -z "$(sed -n "s/^$name=//p" "$ENV_FILE" | tail -n1)" ]; then
    value=$(random_secret 32)
    if grep -q "^$name=" "$ENV_FILE"; then sed -i "s/^$name=.*/$name=$value/" "$ENV_FILE"; else printf '%s=%s\n' "$name" "$value" >>"$ENV_FILE"; fi
    echo "==> $ENV_FILE: $name generated (docs/backup.md; keep a copy of BACKUP_PASSPHRASE off this host)"
  fi
done

# A login user written by a rotation (rotate-secret.sh) exists only in the data it was made in: after
# `make down V=1` the fresh data directory has POSTGRES_USER / RABBITMQ_USER with the env file's current
# password, so the app logs in as that again.
if [ -n "$PROJECT" ] && command -v docker >/dev/null; then
  for pair in POSTGRES:postgres RABBITMQ:rabbitmq; do
    var=${pair%%:*}_LOGIN_USER
    if [ -n "$(sed -n "s/^$var=//p" "$ENV_FILE" | tail -n1)" ] && ! docker volume inspect "${PROJECT}_${pair#*:}-data" >/dev/null 2>&1; then
      sed -i "s/^$var=.*/$var=/" "$ENV_FILE"
      echo "==> $ENV_FILE: $var emptied (no ${pair#*:} data yet: it will be created for ${pair%%:*}_USER)"
    fi
  done
fi

status=0
for name in $SECRETS; do
  value=$(sed -n "s/^$name=//p" "$ENV_FILE" | tail -n1)
  lowered=$(printf '%s' "$value" | tr '[:upper:]' '[:lower:]')
  if ! grep -q "^$name=" "$ENV_FILE"; then
    # e.g. an env file written before the blueprint's own variables were renamed DEPLOYKIT_* (CHANGELOG.md)
    echo "ERROR: $name is missing from $ENV_FILE (add it with a real secret, or delete $ENV_FILE to have one generated;" \
      "an env file from before the DEPLOYKIT_* rename holds the old names, see CHANGELOG.md)" >&2; status=1
  elif [ -z "$value" ]; then
    echo "ERROR: $name is empty in $ENV_FILE (set a real secret, or delete $ENV_FILE to have one generated)" >&2; status=1
  elif [[ " $PLACEHOLDERS " == *" $lowered "* ]] || [ "${#value}" -lt 12 ]; then
    echo "ERROR: $name in $ENV_FILE is a default/placeholder or shorter than 12 characters" >&2; status=1
  fi
done
exit $status
