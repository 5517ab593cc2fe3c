# The Swift service: build, run, unit/integration tests, format lint.

TEST_TARGETS += test-swift

.PHONY: build run test test-swift lint format release-build

build: ## Debug build of the userapi binary
	$(SWIFT) build

run: ## Run the service locally on embedded SQLite (http://127.0.0.1:8080)
	$(SWIFT) run userapi serve $(ARGS)

release-build: ## Optimised build with static Swift runtime, stamped with VERSION/COMMIT
	USERAPI_BUILT=$$(date -u +%Y-%m-%dT%H:%M:%SZ) $(SWIFT) build -c release --static-swift-stdlib

test-swift: ## Swift tests (unit, HTTP, process-level) against SQLite and a throwaway PostgreSQL
	scripts/with-postgres.sh $(SWIFT) test $(SWIFT_TEST_ARGS)

lint: ## swift format lint (strict)
	$(SWIFT) format lint --strict --recursive --parallel Sources Tests Package.swift bench/baselines/Package.swift bench/baselines/Sources

format: ## Rewrite sources with swift format
	$(SWIFT) format format --in-place --recursive --parallel Sources Tests Package.swift bench/baselines/Package.swift bench/baselines/Sources
