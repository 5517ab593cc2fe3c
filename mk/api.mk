# The HTTP contract: openapi.yaml validated, then Schemathesis against the running server.

TEST_TARGETS += test-api

.PHONY: test-api
test-api: build ## OpenAPI document check + Schemathesis fuzzing against SQLite and PostgreSQL
	$(PYTEST) -m api
