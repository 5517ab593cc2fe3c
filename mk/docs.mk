# Documentation that can drift from the code: README.md and docs/.

TEST_TARGETS += test-docs

.PHONY: test-docs readme
test-docs: build ## Docs: the configuration table matches the code, README.md stays a short map, make targets exist, links and anchors resolve
	$(PYTEST) -m docs

readme: build ## Regenerate the configuration table in docs/configuration.md from `userapi config --format markdown`
	USERAPI_BIN="$(USERAPI_BIN)" $(CHART_PY) scripts/docs/readme.py
