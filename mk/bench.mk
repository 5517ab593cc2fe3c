# The benchmark: a command, not a test (it asserts nothing; it prints a table).

.PHONY: bench

bench: release-build ## Release build vs nginx's fixed 200: throughput, p50/p99, exec-to-ready, RSS (SQLite, PostgreSQL)
	scripts/tools/ensure-apt.sh nginx-light wrk postgresql
	USERAPI_BIN=$$($(SWIFT) build -c release --show-bin-path)/userapi scripts/with-postgres.sh python3 bench/run.py $(BENCH_ARGS)
