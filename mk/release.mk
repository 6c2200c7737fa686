# Release metadata (CHANGELOG.md, LICENSE): one version in VERSION, from which the chart's version and
# appVersion, the kustomize overlays' newTag, deploykit's version and the images' release tag derive.
.PHONY: version-check version-bump test-release

version-check: ## Fail unless every version place equals VERSION, CHANGELOG.md has Unreleased, and the chart version moved if helm/ changed since the last release tag
	@scripts/release/check-release.py

version-bump: k8s-tools ## Set the release version everywhere: make version-bump VERSION=x.y.z (then k8s/base re-rendered; commit both)
	@test -n "$(VERSION)" || { echo "usage: make version-bump VERSION=x.y.z" >&2; exit 2; }
	@scripts/release/bump-version.py "$(VERSION)"
	@k8s/render-base.sh render

test-release: venv version-check ## The release-metadata check and its unit tests (throw-away git repositories; seconds)
	$(PY) -m pytest -q -p no:cacheprovider tests/release $(PYTEST_ARGS)
