# Development mode (docs/your-project.md#local-development): the Compose stack with the project's code mounted, DEBUG on,
# runserver and reloading workers and beat (compose/compose.dev.yaml). Same Compose project as `make up`
# (COMPOSE, mk/compose.mk), so make ps / logs / shell S=web / down work on it, and `make up` goes back.
# The project's folder on the host, absolute (the bind mount's source): PROJECT_DIR from the command line
# or the environment, else the PROJECT_ENV file's, else .env's, else app.
DEV_PROJECT_DIR = $(abspath $(or $(PROJECT_DIR),$(shell sed -n 's/^PROJECT_DIR=//p' $(PROJECT_ENV) $(wildcard $(COMPOSE_ENV_FILE)) /dev/null | head -n1),app))
# Its own pools file: development mode changes every pool (compose.dev.yaml's x-pool).
COMPOSE_DEV_VARIANTS = $(COMPOSE_VARIANTS) compose/compose.dev.yaml
COMPOSE_DEV_POOLS ?= build/$(COMPOSE_PROJECT)-dev-pools.yaml
COMPOSE_DEV = $(call compose_cmd,$(COMPOSE_DEV_VARIANTS),$(COMPOSE_DEV_POOLS))

.PHONY: dev dev-start test-dev

dev: docker compose-env images ## Development mode: the stack with PROJECT_DIR mounted, DEBUG on, runserver, workers and beat restarting on a code change (PROJECT_ENV=FILE for a project of its own)
	@$(MAKE) dev-start
	@DEV_PROJECT_DIR=$(DEV_PROJECT_DIR) compose/scripts/print-urls.sh $(COMPOSE_ENV_FILE) "$(COMPOSE_DEV)"

# `make dev` without the image build (the images must exist): what `make test-dev` starts.
dev-start: venv
	@$(call gen_pools,$(COMPOSE_DEV_VARIANTS),$(COMPOSE_DEV_POOLS))
	@echo "==> development mode: $(DEV_PROJECT_DIR) mounted at /app"
	@DEV_PROJECT_DIR=$(DEV_PROJECT_DIR) $(COMPOSE_DEV) up -d --wait --wait-timeout 300 --remove-orphans

test-dev: venv docker examples/bookshop/uv.lock ## Development mode against the real stack: a copy of examples/bookshop, a view and a task edited, web and workers seen reloading
	$(PY) -m pytest tests/dev -p no:cacheprovider -q -s -rA --timeout 600 $(PYTEST_ARGS)
