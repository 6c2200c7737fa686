# Benchmarks (bench/, docs/benchmarks/): the real Compose stack, Redis then RabbitMQ, measured side by
# side with the peer baselines. Figures only: a run fails when something measured breaks, never on a number.
BENCH_BROKERS ?= redis,rabbitmq
.PHONY: bench bench-quick bench-check

bench: venv docker ## Full benchmark (3 repetitions, ~36 min on a quiet 2-core machine): writes docs/benchmarks/ and the README section
	@scripts/setup/apt-install.sh "wrk for the HTTP benchmark" $$(command -v wrk >/dev/null || echo wrk)
	@$(PY) bench/run.py --profile full --brokers $(BENCH_BROKERS)

bench-quick: venv docker ## Smoke-sized run of every benchmark, results in build/bench/quick/ (~6 min for both brokers on a quiet 2-core machine)
	@scripts/setup/apt-install.sh "wrk for the HTTP benchmark" $$(command -v wrk >/dev/null || echo wrk)
	@$(PY) bench/run.py --profile quick --no-footprint --brokers $(BENCH_BROKERS)

bench-check: venv ## The benchmark's own code without a stack (report, charts, medians of the committed run), in seconds
	@$(PY) -m pytest -c tests/bench/pytest.ini --rootdir tests/bench tests/bench $(PYTEST_ARGS)
