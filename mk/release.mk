# Release metadata (CHANGELOG.md, LICENSE): one version in VERSION, from which the chart's version and
# appVersion, the kustomize overlays' newTag, deploykit's version and the images' release tag derive.
.PHONY: version-check version-bump test-release release test-release-registry

version-check: ## Fail unless every version place equals VERSION, CHANGELOG.md has Unreleased, and the chart version moved if helm/ changed since the last release tag
	@scripts/release/check-release.py

version-bump: k8s-tools ## Set the release version everywhere: make version-bump VERSION=x.y.z (then k8s/base re-rendered; commit both)
	@test -n "$(VERSION)" || { echo "usage: make version-bump VERSION=x.y.z" >&2; exit 2; }
	@scripts/release/bump-version.py "$(VERSION)"
	@k8s/render-base.sh render

test-release: venv version-check ## The release-metadata check and its unit tests (throw-away git repositories; seconds)
	$(PY) -m pytest -q -p no:cacheprovider tests/release $(PYTEST_ARGS)

# Publishing (issue #19): the images the stack runs and the chart into an OCI registry, with SBOMs and
# cosign signatures (docs/release.md).
REGISTRY ?=
COSIGN_KEY ?=
export COSIGN_KEY

release: venv k8s-tools images ## Push the images and the chart (OCI) to REGISTRY=host[:port]/namespace with SBOMs, signed with COSIGN_KEY; writes build/release/VERSION/, prints the helm install line
	@scripts/release/release.sh "$(REGISTRY)"

test-release-registry: venv k8s-tools images ## make release into a real registry on 127.0.0.1 (Debian's docker-registry): digests pulled back and compared, SBOMs, labels, cosign signatures verified, lying records refused, chart templated from oci://
	$(PY) -m pytest -q -p no:cacheprovider tests/release_registry $(PYTEST_ARGS)
