# Live single-node Kubernetes on this machine, from official components built from the Go module
# proxy (issue #9; docs/k8s-live.md). Pins: tests/k8s/cluster/versions.env. Outputs: build/k8s (cached).

.PHONY: k8s-build k8s-kubelet k8s-node-up k8s-node-down test-k8s-node test-k8s-cluster k8s-up k8s-down \
	test-k8s k8s-addons-build k8s-chart-install k8s-chart-uninstall

k8s-kubelet: ## Build the pinned kubelet into build/k8s/bin (cached; a cold build takes ~10 min)
	@tests/k8s/cluster/build.sh kubelet

k8s-node-up: docker k8s-kubelet ## Start a standalone node: own containerd + kubelet (static pods from build/k8s/manifests)
	@tests/k8s/cluster/node.sh up

k8s-node-down: ## Stop the node and remove its containers, pod cgroups, netns, bridge and nat rules
	@tests/k8s/cluster/node.sh down

test-k8s-node: venv docker k8s-kubelet ## Spike of #9: a kubelet + containerd runs pods here (cgroups, limits, pod network, clean teardown)
	@compose/images/debian/build.sh
	K8S_LIVE=1 $(PY) -m pytest -c tests/k8s/pytest.ini --rootdir tests/k8s -p no:cacheprovider tests/k8s/test_node.py $(PYTEST_ARGS)

test-k8s-cluster: venv docker k8s-build ## Local cluster (etcd, apiserver, controllers, scheduler, kubelet, kube-proxy, CoreDNS): node, Service by name, exec/logs
	@compose/images/python/build.sh
	K8S_LIVE=1 $(PY) -m pytest -c tests/k8s/pytest.ini --rootdir tests/k8s -p no:cacheprovider tests/k8s/test_cluster.py $(PYTEST_ARGS)

# Builds run here, before pytest: a cold build takes far longer than a test's timeout.
k8s-build: ## Build every pinned cluster binary and CoreDNS (cached in build/k8s; cold: ~20 min)
	@tests/k8s/cluster/build.sh kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl
	@tests/k8s/cluster/addons.sh build coredns

k8s-addons-build: ## Build metrics-server and KEDA (operator, metrics adapter) and their images (cached; cold: see docs/k8s-live.md)
	@nice -n 10 tests/k8s/cluster/addons.sh build metrics-server keda

k8s-up: docker k8s-build ## Start the local cluster (KUBECONFIG=build/k8s/pki/admin.kubeconfig, kubectl in build/k8s/bin)
	@tests/k8s/cluster/cluster.sh up

k8s-down: ## Stop the local cluster and remove what it left on the host
	@tests/k8s/cluster/cluster.sh down

test-k8s: venv docker k8s-tools k8s-build k8s-addons-build images ## Local cluster up, helm install of the chart, the Compose smoke suite through a front door, in-pod checks, KEDA burst, upgrade, uninstall, cluster down (always; ~8-12 min built)
	@tests/k8s/run.sh $(PYTEST_ARGS)

k8s-chart-install: k8s-tools images ## helm install the chart on the running local cluster (make k8s-up) with tests/k8s/chart/values.yaml
	@tests/k8s/chart/chart.sh install

k8s-chart-uninstall: ## helm uninstall the chart from the local cluster (PVCs stay)
	@tests/k8s/chart/chart.sh uninstall
