# Object storage (docs/storage.md): the pinned S3-compatible server (versitygw) built from the Go module
# proxy, its offline image, and the storage suite against the real server.
.PHONY: s3-server s3-image test-storage

s3-server: ## Build the pinned S3 server (versitygw, static) into .tools/bin and build/s3 (cached)
	@compose/images/s3/build.sh binary

s3-image: docker ## Build the offline S3 server image blueprint/s3:<version> (FROM blueprint/debian:trixie)
	@compose/images/s3/build.sh image

test-storage: venv s3-server ## App storage against a real S3 server on 127.0.0.1 (and the filesystem)
	@$(PY) -m pytest -c tests/storage/pytest.ini --rootdir tests/storage tests/storage $(PYTEST_ARGS)
