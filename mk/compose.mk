# Docker Compose stack (compose/, docs/compose.md): images, the front door, smoke tests.
# BUILD_MODE=online|offline|auto picks how images are built (compose/scripts/build-images.sh).
COMPOSE_ENV_FILE ?= .env
# A project of its own (docs/your-project.md): its configuration file, read after .env (which keeps the
# secrets): PROJECT_DIR, DJANGO_SETTINGS_MODULE, DEPLOYKIT_CELERY_APP, DEPLOYKIT_WSGI_APP, WORKER_POOLS...
PROJECT_ENV ?=
# Its own secrets (not kept in its repository), passed to its processes like PROJECT_ENV's variables.
PROJECT_SECRETS ?=
# Compose's env_file paths are relative to compose/: both are passed relative to this checkout.
override PROJECT_ENV := $(if $(PROJECT_ENV),$(shell realpath -m --relative-to=$(CURDIR) $(PROJECT_ENV)))
override PROJECT_SECRETS := $(if $(PROJECT_SECRETS),$(shell realpath -m --relative-to=$(CURDIR) $(PROJECT_SECRETS)))
export PROJECT_ENV PROJECT_SECRETS
COMPOSE_PROJECT ?= blueprint
# Image names chosen by the last `make images` win over .env (only image variables are in that file).
COMPOSE_IMAGES_ENV := build/compose-images.env
# Optional parts of the stack: PROFILE=observability adds Prometheus, Alertmanager and the exporters
# (compose/observability.yaml, docs/observability.md).
PROFILE ?=
export PROFILE
# BACKUP_STORE=local adds a backup target on this host (compose/backup-store.yaml; trials only, not off the
# host: docs/backup.md); give it to `make up` and `make backup`/`restore` alike.
BACKUP_STORE ?=
export BACKUP_STORE
# The variant files given after compose/compose.yaml, and the env files (later ones win), in Compose's order.
COMPOSE_VARIANTS = $(if $(filter rabbitmq,$(BROKER)),compose/rabbitmq.yaml) $(if $(filter s3,$(STORAGE)),compose/compose.s3.yaml) \
	$(if $(filter local,$(BACKUP_STORE)),compose/backup-store.yaml) \
	$(if $(filter observability,$(PROFILE)),compose/observability.yaml $(if $(filter rabbitmq,$(BROKER)),compose/observability.rabbitmq.yaml))
COMPOSE_ENV_FILES = $(COMPOSE_ENV_FILE) $(PROJECT_ENV)
# The worker pools declared in the env files (WORKER_POOLS), one service each, with what the variants change
# in every pool: written by compose/scripts/gen-pools.py (docs/compose.md#worker-pools), given last.
COMPOSE_POOLS ?= build/$(COMPOSE_PROJECT)-pools.yaml
# $(call compose_cmd,VARIANT FILES,POOLS FILE): the stack's docker compose command.
compose_cmd = docker compose -p $(COMPOSE_PROJECT) -f compose/compose.yaml $(addprefix -f ,$(1)) -f $(2) \
	$(addprefix --env-file ,$(COMPOSE_ENV_FILES)) $(if $(wildcard $(COMPOSE_IMAGES_ENV)),--env-file $(COMPOSE_IMAGES_ENV))
# $(call gen_pools,VARIANT FILES,POOLS FILE): (re)write the pools file from the env files.
gen_pools = $(PY) compose/scripts/gen-pools.py $(addprefix --env-file ,$(COMPOSE_ENV_FILES)) $(addprefix -f ,$(1)) -o $(2)
COMPOSE = $(call compose_cmd,$(COMPOSE_VARIANTS),$(COMPOSE_POOLS))
N ?= 3
POOL ?= default

.PHONY: backup backup-list restore images up upgrade rollout-web rotate-secret down logs ps scale-workers shell test-compose test-compose-rabbitmq test-compose-s3 test-compose-project compose-env compose-pools pools-check

# An example of this repository (examples/<name>/deploy/compose.env) gets its uv.lock made first (rule below).
EXAMPLE_LOCK = $(if $(filter examples/%/deploy/compose.env,$(PROJECT_ENV)),$(patsubst %/deploy/compose.env,%/uv.lock,$(PROJECT_ENV)))

images: docker $(EXAMPLE_LOCK) ## Build the stack's images (BUILD_MODE=online|offline|auto; auto = offline without a registry; PROJECT_ENV=FILE for a project of its own)
	@$(if $(PROJECT_ENV),set -a && . ./$(PROJECT_ENV) && set +a &&) compose/scripts/build-images.sh

compose-env:
	@compose/scripts/gen-env.sh $(COMPOSE_ENV_FILE) $(COMPOSE_PROJECT)

# Every command on the stack regenerates the pools file first: it follows the env files' declarations.
compose-pools: venv
	@$(call gen_pools,$(COMPOSE_VARIANTS),$(COMPOSE_POOLS))

pools-check: venv ## The pools generator's tests, and compose/compose.pools.yaml checked against .env.example's pools
	$(PY) -m pytest -q -p no:cacheprovider compose/scripts/test_gen_pools.py $(PYTEST_ARGS)
	$(PY) compose/scripts/gen-pools.py --env-file .env.example -o compose/compose.pools.yaml --check

up: docker compose-env images compose-pools ## Start the stack, or redeploy it (web rolled without a failed request); BROKER=rabbitmq for RabbitMQ, PROFILE=observability for Prometheus
	@compose/scripts/rollout-web.sh $(COMPOSE)
	@$(COMPOSE) up -d --wait --wait-timeout 300 --remove-orphans || { compose/scripts/show-failed.sh $(COMPOSE); exit 1; }
	@compose/scripts/print-urls.sh $(COMPOSE_ENV_FILE) "$(COMPOSE)"

# make upgrade builds the images as `make images` does, into a file of their own (the stack's images file changes
# only once the new release's migrate step passed), then upgrades to the app image built; APP_IMAGE=NAME:TAG takes
# an image already on this host instead (a release pulled, or `make upgrade` back to the previous one).
UPGRADE_IMAGES_ENV := build/$(COMPOSE_PROJECT)-upgrade-images.env
upgrade: docker compose-pools $(if $(APP_IMAGE),,$(EXAMPLE_LOCK)) ## Upgrade a running stack to a new release: build it (or APP_IMAGE=NAME:TAG), its migrate step, then web, each pool, beat, Flower rolled (docs/release.md#upgrading-on-compose)
	@$(if $(APP_IMAGE),,$(if $(PROJECT_ENV),set -a && . ./$(PROJECT_ENV) && set +a &&) COMPOSE_IMAGES_ENV=$(UPGRADE_IMAGES_ENV) compose/scripts/build-images.sh &&) \
		compose/scripts/upgrade.sh $(COMPOSE_IMAGES_ENV) "$(or $(APP_IMAGE),$$(sed -n 's/^APP_IMAGE=//p' $(UPGRADE_IMAGES_ENV)))" -- $(COMPOSE)

rollout-web: docker compose-pools ## Replace the running web container(s) without a failed request: new beside old, then the old drains
	@compose/scripts/rollout-web.sh $(COMPOSE)

rotate-secret: docker compose-pools ## Rotate service credentials without downtime: make rotate-secret NAME="POSTGRES_PASSWORD REDIS_PASSWORD" (also RABBITMQ_PASSWORD, FLOWER_PASSWORD; docs/configuration.md#rotating-secrets)
	@[ -n "$(NAME)" ] || { echo 'NAME is required: make rotate-secret NAME="POSTGRES_PASSWORD REDIS_PASSWORD"' >&2; exit 2; }
	@compose/scripts/rotate-secret.sh $(COMPOSE_ENV_FILE) $(NAME) -- $(COMPOSE)

backup: docker compose-pools ## Back up the database and the media, encrypted, to the object store (BACKUP_S3_*; docs/backup.md)
	@compose/scripts/backup.sh backup -- $(COMPOSE)

backup-list: docker compose-pools ## List the complete backups in the object store
	@compose/scripts/backup.sh list -- $(COMPOSE)

restore: docker compose-pools ## Restore a backup (ID=..., default the newest): verify, stop web/workers/beat/Flower, restore, start; prints the recovery time
	@compose/scripts/backup.sh restore $(ID) -- $(COMPOSE)

down: compose-pools ## Stop the stack (keeps data volumes; `make down V=1` deletes them too)
	@$(COMPOSE) down --remove-orphans $(if $(V),-v)

logs: compose-pools ## Follow the stack's logs (S=service to pick one)
	@$(COMPOSE) logs -f --tail=100 $(S)

ps: compose-pools ## Show the stack's services and their health
	@$(COMPOSE) ps

scale-workers: compose-pools ## Run N containers of one worker pool (make scale-workers POOL=default N=3)
	@$(COMPOSE) up -d --wait --no-recreate --scale worker-$(POOL)=$(N) worker-$(POOL)
	@$(COMPOSE) ps worker-$(POOL)

shell: compose-pools ## Django shell in a one-off app container (S=service for a shell in a running one)
	@$(if $(S),$(COMPOSE) exec $(S) bash,$(COMPOSE) run --rm web python manage.py shell)

test-compose: venv docker ## Build (offline in CI), start a throw-away stack (with the observability profile and a backup store), run the smoke suite incl. scaling, browser, alerts and backup/restore, tear down
	@compose/scripts/test-stack.sh redis filesystem observability backup

test-compose-rabbitmq: venv docker ## The same smoke suite against the RabbitMQ variant (with the observability profile: its RabbitMQ exporter)
	@compose/scripts/test-stack.sh rabbitmq filesystem observability

test-compose-s3: venv docker ## The same smoke suite in S3 mode (compose.s3.yaml: versitygw, no shared volume)
	@compose/scripts/test-stack.sh redis s3

# An example's uv.lock is not kept in the repository (it names the package index's host): made here.
examples/%/uv.lock: examples/%/pyproject.toml | venv
	cd examples/$* && UV_NATIVE_TLS=1 UV_PYTHON_DOWNLOADS=never ../../$(VENV)/bin/uv lock --quiet

test-compose-project: venv docker examples/bookshop/uv.lock ## A second project (examples/bookshop) deployed from its configuration file alone; the generic smoke suite against it
	@PROJECT_ENV=examples/bookshop/deploy/compose.env compose/scripts/test-stack.sh redis
