# Benchmarks (bench/, docs/benchmarks/): the real Compose stack, Redis then RabbitMQ, measured side by
# side with the peer baselines. Figures only: a run fails when something measured breaks, never on a number.
BENCH_BROKERS ?= redis,rabbitmq
.PHONY: bench bench-quick

bench: venv docker ## Full benchmark (3 repetitions; not yet completed on our shared machines): writes docs/benchmarks/ and the README section
	@scripts/apt-install.sh "wrk for the HTTP benchmark" $$(command -v wrk >/dev/null || echo wrk)
	@$(PY) bench/run.py --profile full --brokers $(BENCH_BROKERS)

bench-quick: venv docker ## Smoke-sized run of every benchmark, results in build/bench/quick/ (15-20 min at load 20-38 on 2 cores)
	@scripts/apt-install.sh "wrk for the HTTP benchmark" $$(command -v wrk >/dev/null || echo wrk)
	@$(PY) bench/run.py --profile quick --no-footprint --brokers $(BENCH_BROKERS)
