# Documentation that can drift from the code.

TEST_TARGETS += test-docs

.PHONY: test-docs readme
test-docs: build ## README's config table, commands and make targets match the code
	scripts/docs/check-readme.py

readme: build ## Regenerate the README's configuration table
	scripts/docs/check-readme.py --fix
