# Benchmarks (bench/, docs/benchmarks/): the real Compose stack, Redis then RabbitMQ, measured side by
# side with the peer baselines. Figures only: a run fails when something measured breaks, never on a number.
BENCH_BROKERS ?= redis,rabbitmq
.PHONY: bench bench-quick

bench: venv docker ## Full benchmark (~15-20 min): writes docs/benchmarks/ and the README's benchmark section
	@scripts/apt-install.sh "wrk for the HTTP benchmark" $$(command -v wrk >/dev/null || echo wrk)
	@$(PY) bench/run.py --profile full --brokers $(BENCH_BROKERS)

bench-quick: venv docker ## Smoke-sized run of every benchmark (~2-3 min), results under build/bench/quick/
	@scripts/apt-install.sh "wrk for the HTTP benchmark" $$(command -v wrk >/dev/null || echo wrk)
	@$(PY) bench/run.py --profile quick --no-footprint --brokers $(BENCH_BROKERS)
