# Front door of the Django + Celery deployment blueprint. `make help` lists the targets.
# Each area keeps its targets in mk/<area>.mk; this file holds the shared set-up and the aggregates.
SHELL := /bin/bash
.SHELLFLAGS := -o errexit -o pipefail -o nounset -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(VENV)/bin:$(PATH)

include $(sort $(wildcard mk/*.mk))

# Suites run by `make test`, in this order: host-only and fast first, then the running stacks.
# Set here (not in the fragments) so the order is explicit.
TEST_SUITES := contract-check pools-check test-alerts test-release test-release-registry test-project test-ansible-unit test-app test-matrix bench-check test-fuzz test-storage chart-test security-scan test-compose test-compose-rabbitmq test-compose-s3 test-project-image test-compose-project test-dev test-security chaos-ci test-ansible test-k8s

.PHONY: help venv docker lock test
help: ## List the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z0-9_.-]+:.*## /{printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST) | sort

venv: ## Create/refresh the host virtualenv from requirements/dev.lock
	@scripts/setup/ensure-venv.sh

docker: ## Make sure Docker Engine and Compose are installed and running (installs them as root on Debian/Ubuntu)
	@scripts/setup/ensure-docker.sh

lock: venv ## Re-resolve requirements/*.lock (universal: every Python we run) after editing requirements/*.in
	cd requirements && for lock in app dev sbom; do UV_NATIVE_TLS=1 ../$(VENV)/bin/uv pip compile -q --universal --python-version 3.11 --generate-hashes $$lock.in -o $$lock.lock; done

test: ## Run every suite, in order (what CI runs; see TEST_SUITES)
	@set -e; for s in $(TEST_SUITES); do echo "===== make $$s"; $(MAKE) $$s; done
