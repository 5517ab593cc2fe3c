# Kubernetes delivery: the Helm chart (deploy/helm/userapi), the Kustomize
# base/overlays rendered from it, and their offline validation with real
# tools (Helm v4 library, kubernetes-validate, checkov, the real binary).

TEST_TARGETS += test-chart test-kustomize

CHART_DIR := deploy/helm/userapi
CHART_DIST ?= dist/chart
# The binary the chart<->app contract test starts (see scripts/chart/contract_test.py).
USERAPI_BIN ?= .build/debug/userapi
# Python of the project's tool venv (installs scripts/tools/requirements-*.txt on first use).
CHART_PY = "$$(scripts/tools/ensure-venv.sh)/python"

.PHONY: test-chart test-kustomize manifests chart-lint chart-package chart-sync chart-contract

# No __pycache__ next to the scripts in the work tree.
test-chart test-kustomize manifests chart-lint chart-package chart-sync chart-contract: export PYTHONDONTWRITEBYTECODE = 1

test-chart: ## Chart: lint, render, kubernetes-validate, checkov, negative tests, contract test with the real binary
	$(CHART_PY) scripts/chart/test_chart.py
	$(MAKE) --no-print-directory chart-contract

chart-contract: ## Chart<->app contract: the real binary started exactly as the rendered Deployment configures it
	@if [[ ! -x "$(USERAPI_BIN)" ]]; then echo "chart-contract: building $(USERAPI_BIN)"; $(SWIFT) build --product userapi; fi
	USERAPI_BIN="$(USERAPI_BIN)" scripts/with-postgres.sh $(CHART_PY) scripts/chart/contract_test.py

test-kustomize: ## Kustomize: base matches the chart, overlays build and pass kubernetes-validate and checkov
	$(CHART_PY) scripts/chart/test_kustomize.py

manifests: ## Render the Kustomize base and components from the chart (commit the result)
	$(CHART_PY) scripts/chart/manifests.py

chart-lint: ## helm lint --strict and render every chart scenario (quick; no checkov)
	$(CHART_PY) scripts/chart/test_chart.py --no-checkov

chart-package: ## Package the chart into $(CHART_DIST)/userapi-<version>.tgz
	@mkdir -p "$(CHART_DIST)"
	$(CHART_PY) -c 'import sys, helm_python as h; print(h.package(sys.argv[1], destination=sys.argv[2]))' "$(CHART_DIR)" "$(CHART_DIST)"

chart-sync: ## Copy deploy/monitoring dashboard and alert rules into the chart (test-chart fails on drift)
	$(CHART_PY) scripts/chart/monitoring_sync.py
