# Docker Compose stack (compose/, docs/compose.md): images, the front door, smoke tests.
# BUILD_MODE=online|offline|auto picks how images are built (compose/scripts/build-images.sh).
COMPOSE_ENV_FILE ?= .env
# A project of its own (docs/your-project.md): its configuration file, read after .env (which keeps the
# secrets): PROJECT_DIR, DJANGO_SETTINGS_MODULE, DEPLOYKIT_CELERY_APP, DEPLOYKIT_WSGI_APP, WORKER*_QUEUES...
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
COMPOSE = docker compose -p $(COMPOSE_PROJECT) -f compose/compose.yaml $(if $(filter rabbitmq,$(BROKER)),-f compose/rabbitmq.yaml) \
	$(if $(filter s3,$(STORAGE)),-f compose/compose.s3.yaml) \
	--env-file $(COMPOSE_ENV_FILE) $(if $(PROJECT_ENV),--env-file $(PROJECT_ENV)) \
	$(if $(wildcard $(COMPOSE_IMAGES_ENV)),--env-file $(COMPOSE_IMAGES_ENV))
N ?= 3

.PHONY: images up rollout-web down logs ps scale-workers shell test-compose test-compose-rabbitmq test-compose-s3 test-compose-project compose-env

images: docker ## Build the stack's images (BUILD_MODE=online|offline|auto; auto = offline without a registry; PROJECT_ENV=FILE for a project of its own)
	@$(if $(PROJECT_ENV),set -a && . ./$(PROJECT_ENV) && set +a &&) compose/scripts/build-images.sh

compose-env:
	@compose/scripts/gen-env.sh $(COMPOSE_ENV_FILE)

up: docker compose-env images ## Start the stack, or redeploy it (web rolled without a failed request); BROKER=rabbitmq for RabbitMQ
	@compose/scripts/rollout-web.sh $(COMPOSE)
	@$(COMPOSE) up -d --wait --wait-timeout 300 --remove-orphans
	@compose/scripts/print-urls.sh $(COMPOSE_ENV_FILE) "$(COMPOSE)"

rollout-web: docker ## Replace the running web container(s) without a failed request: new beside old, then the old drains
	@compose/scripts/rollout-web.sh $(COMPOSE)

down: ## Stop the stack (keeps data volumes; `make down V=1` deletes them too)
	@$(COMPOSE) down --remove-orphans $(if $(V),-v)

logs: ## Follow the stack's logs (S=service to pick one)
	@$(COMPOSE) logs -f --tail=100 $(S)

ps: ## Show the stack's services and their health
	@$(COMPOSE) ps

scale-workers: ## Run N default-queue workers (make scale-workers N=3)
	@$(COMPOSE) up -d --wait --no-recreate --scale worker=$(N) worker
	@$(COMPOSE) ps worker

shell: ## Django shell in a one-off app container (S=service for a shell in a running one)
	@$(if $(S),$(COMPOSE) exec $(S) bash,$(COMPOSE) run --rm web python manage.py shell)

test-compose: venv docker ## Build (offline in CI), start a throw-away stack, run the smoke suite incl. scaling and browser, tear down
	@compose/scripts/test-stack.sh redis

test-compose-rabbitmq: venv docker ## The same smoke suite against the RabbitMQ variant
	@compose/scripts/test-stack.sh rabbitmq

test-compose-s3: venv docker ## The same smoke suite in S3 mode (compose.s3.yaml: versitygw, no shared volume)
	@compose/scripts/test-stack.sh redis s3

# The example's uv.lock is not kept in the repository (it names the package index's host): made here.
examples/bookshop/uv.lock: examples/bookshop/pyproject.toml | venv
	cd examples/bookshop && UV_NATIVE_TLS=1 UV_PYTHON_DOWNLOADS=never ../../$(VENV)/bin/uv lock --quiet

test-compose-project: venv docker examples/bookshop/uv.lock ## A second project (examples/bookshop) deployed from its configuration file alone; the generic smoke suite against it
	@PROJECT_ENV=examples/bookshop/deploy/compose.env compose/scripts/test-stack.sh redis
