# The benchmark: a command, not a test (it asserts nothing; it prints a table).

.PHONY: bench bench-baselines

bench: release-build bench-baselines ## Release build vs the one-route Hummingbird floor (SQLite) and pgbench (PostgreSQL): rates, p50/p99, paced p99, exec-to-ready, RSS
	scripts/tools/ensure-apt.sh wrk postgresql
	USERAPI_BIN=$$($(SWIFT) build -c release --show-bin-path)/userapi \
	BASELINES_BIN=$$($(SWIFT) build -c release --package-path bench/baselines --show-bin-path) \
	scripts/with-postgres.sh python3 bench/run.py $(BENCH_ARGS)

bench-baselines: ## Release build of bench/baselines (the one-route Hummingbird floor), built like userapi
	$(SWIFT) build -c release --static-swift-stdlib --package-path bench/baselines
