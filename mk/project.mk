# Your own project in the image (docs/your-project.md): PROJECT_DIR, PROJECT_REQUIREMENTS,
# DJANGO_SETTINGS_MODULE and BASE_PYTHON pick what compose/images/app/prepare.sh builds.
.PHONY: test-project test-project-image test-project-image-sdist test-project-image-314

test-project: venv ## Dependency detection, normalisation and the Python check (scripts/project/resolve-deps) on throw-away projects (seconds)
	$(PY) -m pytest -q -p no:cacheprovider tests/project/test_resolve_deps.py $(PYTEST_ARGS)

test-project-image: venv docker ## Build examples/bookshop's image offline as CI does and check it (refusals, imports, collectstatic, uid, no compiler)
	$(PY) -m pytest -q -p no:cacheprovider -s tests/project/test_image_build.py $(PYTEST_ARGS)

test-project-image-314: venv docker ## Opt-in: the bookshop (pinned to 3.14 in a copy) on BASE_PYTHON=3.14, Debian testing's Python; builds that base first
	BASE_PYTHON_TEST=3.14 $(PY) -m pytest -q -p no:cacheprovider -s tests/project/test_image_build.py -k 314 $(PYTEST_ARGS)

test-project-image-sdist: venv docker ## Opt-in: the bookshop with psycopg[c] (no wheel): compiled in the builder stage, libpq5 and no compiler at run time
	PROJECT_TEST_SDIST=1 $(PY) -m pytest -q -p no:cacheprovider -s tests/project/test_image_build.py -k sdist $(PYTEST_ARGS)
