# deploykit's supported range, tested at both ends (tests/matrix/): Python 3.11 with the lowest Django,
# Celery and kombu deploykit declares (a host venv), Python 3.14 with the newest (a Debian testing container).
MATRIX_DIR := build/matrix
MATRIX_ENV = MATRIX_DIR=$(MATRIX_DIR) UV=$(VENV)/bin/uv MATRIX_WHEEL=$$(ls $(MATRIX_DIR)/dist/deploykit-*.whl)

.PHONY: test-matrix test-matrix-lowest test-matrix-newest matrix-wheel
matrix-wheel: venv # deploykit's wheel, built from its sdist as a release would be
	@rm -rf $(MATRIX_DIR)/dist
	UV_NATIVE_TLS=1 $(VENV)/bin/uv build --quiet --out-dir $(MATRIX_DIR)/dist deploykit

test-matrix: test-matrix-lowest test-matrix-newest ## deploykit at both ends of its supported range (Python 3.11 + lowest Django/Celery/kombu, 3.14 + newest) against real Redis and PostgreSQL

test-matrix-lowest: app-deps matrix-wheel ## The lowest end only: Python 3.11 (host venv), Django/Celery/kombu at deploykit's lower bounds
	$(MATRIX_ENV) MATRIX_PYTHON=python3.11 MATRIX_RESOLUTION=lowest-direct tests/matrix/run-end.sh

test-matrix-newest: docker matrix-wheel ## The newest end only: Python 3.14 (Debian testing container), the newest Django/Celery/kombu deploykit allows
	tests/matrix/image.sh
	$(MATRIX_ENV) tests/matrix/in-container.sh
