# Helm chart (helm/django-celery), plain manifests (k8s/) and their tests. See docs/helm.md.
CHART_DIR := helm/django-celery
ENV ?=
NAMESPACE ?= django-celery
RELEASE ?= django-celery

.PHONY: k8s-tools chart-lint chart-test k8s-render k8s-check helm-env-check deploy-helm smoke-k8s

k8s-tools: ## Build the pinned helm (and kustomize when kubectl is missing) into .tools/bin
	@scripts/setup/ensure-k8s-tools.sh all

chart-lint: k8s-tools ## helm lint --strict the chart (default values + a minimal external setup)
	helm lint --strict $(CHART_DIR) --set config.env.DJANGO_ALLOWED_HOSTS=app.example.com \
		--set database.url=postgres://u:p@db:5432/app --set broker.url=redis://:p@redis:6379/0 \
		--set workers.keda.redis.address=redis:6379

chart-test: venv k8s-tools ## Chart tests: helm lint/template matrix, schema validation (3 Kubernetes minors, KEDA CRDs), k8s/ drift and overlays
	@mkdir -p build
	$(PY) -m pytest -q -p no:cacheprovider tests/chart

k8s-render: k8s-tools ## Re-render k8s/base/django-celery.yaml and k8s/examples/bookshop/bookshop.yaml from the chart (commit the result)
	@k8s/render-base.sh render

k8s-check: venv k8s-tools ## Fail when k8s/base or k8s/examples drifted from the chart; render and validate the overlays
	@mkdir -p build
	@k8s/render-base.sh check
	$(PY) -m pytest -q -p no:cacheprovider tests/chart/test_k8s_manifests.py

helm-env-check:
	@test -n "$(ENV)" -a -f helm/environments/$(ENV).yaml || { echo "usage: make deploy-helm ENV=<$$(ls helm/environments | sed 's/\.yaml//' | paste -sd'|')>" >&2; exit 2; }

# The environment is checked first, before any tool is fetched.
deploy-helm: helm-env-check k8s-tools ## helm upgrade --install with helm/environments/$(ENV).yaml (ENV=staging|production; needs a kubeconfig)
	helm upgrade --install $(RELEASE) $(CHART_DIR) --namespace $(NAMESPACE)-$(ENV) --create-namespace \
		--values helm/environments/$(ENV).yaml --wait --timeout 15m

smoke-k8s: venv ## Run tests/smoke against a cluster release through kubectl port-forward (needs a kubeconfig)
	@tests/smoke/run-k8s.sh
