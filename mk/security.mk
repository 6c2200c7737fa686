# Security and reliability (SECURITY.md, docs/reliability.md): infrastructure-code scan, image and
# configuration checks, API fuzzing, fault tests.
SECURITY_PYTEST := $(PY) -m pytest -p no:cacheprovider -c tests/security/pytest.ini --rootdir tests

.PHONY: security-tools security-lock security-scan audit-deps test-security test-fuzz chaos chaos-rabbitmq chaos-ci

security-tools: venv k8s-tools # checkov + hadolint in their own venv (.tools/scanners), pinned helm
	@security/ensure-scanners.sh

security-lock: venv ## Re-resolve security/scanners.lock (checkov, hadolint, pip-audit) after editing security/scanners.in
	cd security && UV_NATIVE_TLS=1 ../$(VENV)/bin/uv pip compile -q --universal --python-version 3.11 --generate-hashes scanners.in -o scanners.lock

security-scan: security-tools docker ## checkov (Dockerfiles, rendered chart, k8s/, Ansible) + hadolint + Compose policy; skips only in security/scan-skips.yaml
	$(PY) security/scan.py
	$(SECURITY_PYTEST) tests/security/test_compose_policy.py $(PYTEST_ARGS)

# Not in `make test` yet: its vulnerability services are not reachable from the build machines (docs/release.md).
audit-deps: security-tools ## pip-audit over every lock: a known vulnerability fails unless security/audit-exceptions.txt gives its reason
	@security/audit-deps.sh

test-security: venv docker images ## Security suite: Compose policy, app image (no secrets in layers/history/labels, non-root, no caps), every required variable refused, a new contract variable reaching a Compose app process
	$(SECURITY_PYTEST) tests/security $(PYTEST_ARGS)

test-fuzz: app-deps ## Fuzz the API from its OpenAPI schema (schemathesis) against gunicorn + redis-server on 127.0.0.1: no 5xx, responses match the schema
	$(SECURITY_PYTEST) tests/fuzz $(PYTEST_ARGS)

chaos: venv docker images ## Fault tests against a throw-away Compose stack (project sec-chaos-redis): broker restart/stop, kill -9, 1,000-task burst with random kills, rolling recreate, second beat, poison work, sustained load, PostgreSQL stop; prints sent/completed/lost (~20 min)
	CHAOS_BROKER=redis $(SECURITY_PYTEST) tests/chaos -s $(PYTEST_ARGS)

chaos-rabbitmq: venv docker images ## The fault tests on the RabbitMQ variant (project sec-chaos-rabbitmq)
	CHAOS_BROKER=rabbitmq $(SECURITY_PYTEST) tests/chaos -s $(PYTEST_ARGS)

# The part of the fault tests `make test` runs (docs/reliability.md): the faults that end within seconds on
# the Redis stack, the broker restart during a burst (100 tasks here: the loss the publish journal closes),
# and tests/chaos/test_delivery.py (runs counted per task id: warm shutdown with long tasks, a rate-limited
# burst with countdown tasks, kill -9 of pool children and of the worker's main process). Left out: the
# 1,000-task burst, rolling recreate, sustained load and the second beat (minutes each). tests/chaos/test_rotation.py
# (database, broker and Flower passwords rotated under load) runs here: no other stack run rotates them.
# tests/chaos/test_upgrade.py (`make upgrade`'s script: N to a thin N+1 with tasks queued and running, a
# refused release) runs here too, on this stack: no other stack run upgrades one. Its rollback to N (~40 s more)
# runs in `make chaos`, or here with CHAOS_CI_TESTS=test_upgrade.
CHAOS_CI_TESTS ?= test_delivery or blackhole or postgres_stop or broker_stopped or test_poison or broker_restart or test_web_rollout or test_rotation or (test_upgrade and not back_to_n)
CHAOS_CI_HTTPS_PORT ?= 27443
CHAOS_CI_HTTP_PORT ?= 27080
chaos-ci: venv docker images ## The part of `make chaos` that `make test` runs (Redis; project sec-chaos-ci, ports 27443/27080): runs counted per task id through warm shutdown, rate limit, countdown and kill -9; broker restart during a burst, poison image and task, PostgreSQL and broker stopped, database/broker/Flower passwords rotated under load, an upgrade N -> N+1 with tasks queued and running (~7-9 min)
	CHAOS_BROKER=redis CHAOS_BURST=$${CHAOS_BURST:-100} CHAOS_PROJECT=sec-chaos-ci CHAOS_HTTPS_PORT=$(CHAOS_CI_HTTPS_PORT) CHAOS_HTTP_PORT=$(CHAOS_CI_HTTP_PORT) \
		$(SECURITY_PYTEST) tests/chaos -s -k "$(CHAOS_CI_TESTS)" $(PYTEST_ARGS)
