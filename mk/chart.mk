# Kubernetes delivery: the Helm chart (deploy/helm/userapi), the Kustomize
# base/overlays rendered from it, and their offline validation with real
# tools (Helm v4 library, kubernetes-validate, checkov, the real binary).

TEST_TARGETS += test-chart test-kustomize

CHART_DIR := deploy/helm/userapi
CHART_DIST ?= dist/chart
# The binary the checks that run the app start (chart contract, live monitoring, docs, API).
USERAPI_BIN ?= .build/debug/userapi
# Python of the project's tool venv (installs scripts/tools/requirements-*.txt on first use).
CHART_PY = "$$(scripts/tools/ensure-venv.sh)/python"

# The delivery checks are one pytest session (scripts/pytest.ini, scripts/conftest.py);
# every test-* target of mk/*.mk runs its group with `$(PYTEST) -m <group>`.
# PYTEST_ARGS adds options, e.g. PYTEST_ARGS='-k checkov -x'. No __pycache__ in the work tree.
PYTEST = PYTHONDONTWRITEBYTECODE=1 USERAPI_BIN="$(USERAPI_BIN)" $(CHART_PY) -m pytest scripts $(PYTEST_ARGS)
# A recipe line for targets whose checks start the binary: builds the default one when missing.
NEED_USERAPI = @if [[ ! -x "$(USERAPI_BIN)" && "$(USERAPI_BIN)" == .build/debug/userapi ]]; then \
	  echo "building $(USERAPI_BIN)"; $(SWIFT) build --product userapi; fi

.PHONY: test-chart test-kustomize manifests chart-lint chart-package chart-sync chart-contract

# No __pycache__ next to the scripts in the work tree.
manifests chart-package chart-sync: export PYTHONDONTWRITEBYTECODE = 1

test-chart: ## Chart: lint, render, kubernetes-validate, checkov, negative tests, contract test with the real binary
	$(NEED_USERAPI)
	$(PYTEST) -m chart

chart-contract: ## Chart<->app contract: the real binary started exactly as the rendered Deployment configures it
	$(NEED_USERAPI)
	$(PYTEST) -m chart -k contract

test-kustomize: ## Kustomize: base matches the chart, overlays build and pass kubernetes-validate and checkov
	$(PYTEST) -m kustomize

manifests: ## Render the Kustomize base and components from the chart (commit the result)
	$(CHART_PY) scripts/chart/manifests.py

chart-lint: ## helm lint --strict and render every chart scenario (quick; no checkov)
	$(PYTEST) -m chart -k "helm_lint or renders"

chart-package: ## Package the chart into $(CHART_DIST)/userapi-<version>.tgz
	@mkdir -p "$(CHART_DIST)"
	$(CHART_PY) -c 'import sys, helm_python as h; print(h.package(sys.argv[1], destination=sys.argv[2]))' "$(CHART_DIR)" "$(CHART_DIST)"

chart-sync: ## Copy deploy/monitoring dashboard and alert rules into the chart (test-chart fails on drift)
	$(CHART_PY) scripts/chart/monitoring_sync.py
