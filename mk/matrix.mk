# deploykit's supported range, tested at both ends (tests/matrix/): Python 3.11 with the lowest Django,
# Celery and kombu deploykit declares (host venv), Python 3.14 with the newest (a Debian testing container).
MATRIX_DIR := build/matrix

.PHONY: test-matrix matrix-wheel
matrix-wheel: venv # deploykit's wheel, built from its sdist as a release would be
	@rm -rf $(MATRIX_DIR)/dist
	UV_NATIVE_TLS=1 $(VENV)/bin/uv build --quiet --out-dir $(MATRIX_DIR)/dist deploykit

test-matrix: app-deps docker matrix-wheel ## deploykit at both ends of its supported range (Python 3.11 + lowest Django/Celery, 3.14 + newest) against real Redis and PostgreSQL
	MATRIX_PYTHON=python3.11 MATRIX_RESOLUTION=lowest-direct MATRIX_DIR=$(MATRIX_DIR) UV=$(VENV)/bin/uv \
	  MATRIX_WHEEL=$$(ls $(MATRIX_DIR)/dist/deploykit-*.whl) tests/matrix/run-end.sh
