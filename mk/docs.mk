# Documentation that can drift from the code.

TEST_TARGETS += test-docs

.PHONY: test-docs readme
test-docs: build ## README's config table, commands and make targets match the code
	$(PYTEST) -m docs

readme: build ## Regenerate the README's configuration table
	USERAPI_BIN="$(USERAPI_BIN)" $(CHART_PY) scripts/docs/readme.py
