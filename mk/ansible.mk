# Ansible: deploy the stack onto Debian 13 hosts with systemd (ansible/, docs/ansible.md).
#   make deploy ENV=staging            site.yml against ansible/inventories/$(ENV)
#   make deploy-check ENV=staging      the same in check mode with diffs (changes nothing)
#   make rollback ENV=staging          back to the previous release (refused when migrations moved on)
# Vault: export ANSIBLE_VAULT_PASSWORD_FILE (never committed) for inventories with encrypted secrets.
# No default: a deploy names its environment (an unnamed one must not land on staging, or anywhere).
ENV ?=
PLAYBOOK ?= site.yml
ANSIBLE_ARGS ?=
ANSIBLE_INVENTORY_DIR = ansible/inventories/$(ENV)
ANSIBLE_RUN = cd ansible && ANSIBLE_CONFIG=ansible.cfg ../$(VENV)/bin/ansible-playbook -i inventories/$(ENV)/hosts.yml

.PHONY: deploy deploy-check rollback ansible-inventory-check ansible-lint test-ansible test-ansible-unit fleet-up fleet-down

ansible-inventory-check:
	@test -n "$(ENV)" || { echo "usage: make $(or $(filter deploy deploy-check rollback,$(MAKECMDGOALS)),deploy) ENV=<$$(ls ansible/inventories | grep -vx test | paste -sd'|')>" >&2; exit 2; }
	@test -f $(ANSIBLE_INVENTORY_DIR)/hosts.yml || { echo "ERROR: no inventory $(ANSIBLE_INVENTORY_DIR)/hosts.yml (ENV=$(ENV))" >&2; exit 1; }

deploy: ansible-inventory-check venv ## Deploy/upgrade the stack on an inventory: make deploy ENV=staging [PLAYBOOK=deploy.yml]
	@compose/images/app/build-wheelhouse.sh
	@if grep -qE '^ *storage:' $(ANSIBLE_INVENTORY_DIR)/hosts.yml; then compose/images/s3/build.sh binary; fi
	$(ANSIBLE_RUN) $(ANSIBLE_ARGS) $(PLAYBOOK)

deploy-check: ansible-inventory-check venv ## Dry run of a deploy with diffs: make deploy-check ENV=staging
	@compose/images/app/build-wheelhouse.sh
	$(ANSIBLE_RUN) --check --diff $(ANSIBLE_ARGS) $(PLAYBOOK)

rollback: ansible-inventory-check venv ## Roll back to the previous release: make rollback ENV=staging [ANSIBLE_ARGS='-e app_version=r...']
	$(ANSIBLE_RUN) $(ANSIBLE_ARGS) rollback.yml

ansible-lint: venv ## Lint the playbooks and roles (production profile, see ansible/.ansible-lint)
	cd ansible && ../$(VENV)/bin/ansible-lint

test-ansible-unit: venv ## The app role on the control machine, no fleet (seconds): build-release.sh's releases and refusals, the env file against the contract
	$(PY) -m pytest -q -p no:cacheprovider tests/ansible/unit $(PYTEST_ARGS)

test-ansible: venv docker examples/bookshop/uv.lock ## Ansible roles on a fleet of systemd containers: deploy, idempotence, testinfra, e2e, generic smoke, worker loss, rollback, a second project
	@tests/ansible/run.sh

fleet-up: venv docker ## Start the Ansible test fleet (systemd containers on network blueprint-fleet)
	@tests/ansible/fleet.sh up

fleet-down: ## Remove the Ansible test fleet
	@tests/ansible/fleet.sh down
