# The web console (/console/, Sources/UserAPI/Resources/console): static checks of
# its files, then a real browser (Debian's chromium, headless, driven by Playwright
# from the tool venv) against the real binary: two pages, live updates, problem
# details under their fields, keyboard use, the CSP, reconnect and resume.
# Installs chromium itself (scripts/tools/ensure-apt.sh) and playwright
# (scripts/tools/requirements-console.txt); never downloads a browser. Without
# chromium the browser tests skip with the reason, and fail in CI (CI=true).

TEST_TARGETS += test-console

.PHONY: test-console console-screenshot

# `build`, not NEED_USERAPI: the console's files are compiled into the binary, so an
# old binary would test old files (the test also compares what it serves with the work tree).
test-console: build ## Web console: asset checks and a headless-chromium test (live updates, errors, keyboard, CSP)
	$(PYTEST) -m console

console-screenshot: build ## Refresh docs/console.png: the console in headless chromium against a seeded server
	PYTHONDONTWRITEBYTECODE=1 USERAPI_BIN="$(USERAPI_BIN)" $(CHART_PY) scripts/console/screenshot.py
