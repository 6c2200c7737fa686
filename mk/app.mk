# The reference Django + Celery application (app/) and deploykit/, the package it uses: tests and a local
# development loop.

APP_COV_OPTS := --cov=app --cov=deploykit/src --cov-config=tests/app/coveragerc --cov-report=term-missing:skip-covered --cov-report=xml:build/coverage-app.xml

CONTRACT = $(PY) -m deploykit.contract --project app/contract.toml --root .

.PHONY: test-app app-deps app-run app-unit contract-render contract-check
app-deps: # venv + the Debian packages the integration tests run (as root on Debian/Ubuntu, when missing)
	@scripts/setup/ensure-venv.sh
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	{ command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ]; } || missing="$$missing rabbitmq-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	{ command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; } || missing="$$missing pgbouncer"; \
	scripts/setup/apt-install.sh --no-recommends "the app's integration tests" $$missing

test-app: app-deps ## Run the app's unit and integration tests with coverage
	@mkdir -p build
	$(PY) -m pytest tests/app $(APP_COV_OPTS) $(PYTEST_ARGS)

app-unit: app-deps ## Run only the app's fast unit tests (no real services)
	$(PY) -m pytest tests/app -m "not integration" $(PYTEST_ARGS)

app-run: app-deps ## Run the app locally: runserver + worker + beat against a local redis-server (DJANGO_DEBUG=true)
	@app/bin/dev

contract-render: venv ## Regenerate what the configuration contract gives: docs/configuration.md's tables, .env.example's block, the Ansible allow-list, the chart's config.env block and schema, compose.yaml's app environment block
	$(CONTRACT) render

contract-check: venv ## Fail (with a diff naming the file) when a file generated from the configuration contract is stale
	$(CONTRACT) check
