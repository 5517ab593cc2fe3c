# The benchmark: a command, not a test (it asserts nothing; it prints a table).

.PHONY: bench bench-baselines

bench: release-build bench-baselines ## Release build vs nginx's fixed 200 and the bare SwiftNIO, SwiftNIO+task and Hummingbird floors: throughput, p50/p99, exec-to-ready, RSS (SQLite, PostgreSQL)
	scripts/tools/ensure-apt.sh nginx-light wrk postgresql
	USERAPI_BIN=$$($(SWIFT) build -c release --show-bin-path)/userapi \
	BASELINES_BIN=$$($(SWIFT) build -c release --package-path bench/baselines --show-bin-path) \
	scripts/with-postgres.sh python3 bench/run.py $(BENCH_ARGS)

bench-baselines: ## Release build of bench/baselines (SwiftNIO alone, SwiftNIO with a task per request, one-route Hummingbird), built like userapi
	$(SWIFT) build -c release --static-swift-stdlib --package-path bench/baselines
