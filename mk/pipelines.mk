# CI/CD: lint the pipeline definitions (.github/workflows, .gitlab-ci.yml), keep them
# calling real make targets, cut releases and deploy. See scripts/pipelines/ and
# scripts/release/ (their checks: test_pipelines.py, test_release.py).

TEST_TARGETS += test-pipelines

# The project's tool venv (scripts/tools/ensure-venv.sh prints its bin directory).
PIPELINES_PYTHON = "$$(scripts/tools/ensure-venv.sh)/python"

# Files the GitOps promotion PR edits: the Argo CD Application(s) whose Helm values
# pin the prod image. The rule that finds the userapi image tag inside them is in
# scripts/release/release.py; files without one are left alone, none at all fails.
PROMOTE_FILES ?= $(wildcard deploy/argocd/values/*.yaml deploy/argocd/apps/*.yaml)

.PHONY: test-pipelines release release-check helm-deploy promote

test-pipelines: ## Lint workflows + GitLab CI (actionlint, zizmor, checkov, yamllint), check their make targets, test release versioning
	$(PYTEST) -m "pipelines or release"

# VERSION has a default in the Makefile (the chart's appVersion), so only a
# VERSION given on the command line or in the environment counts here.
release: ## Bump Chart.yaml version+appVersion (and the prod overlay image tag) to VERSION=x.y.z, re-render manifests
	@if [[ "$(origin VERSION)" != "command line" && "$(origin VERSION)" != "environment" ]]; then \
	  echo "usage: make release VERSION=x.y.z" >&2; exit 2; fi
	$(PIPELINES_PYTHON) scripts/release/release.py bump "$(VERSION)"
	@# The Kustomize base is rendered from the chart; keep it in step when that target exists.
	@if $(MAKE) -n manifests >/dev/null 2>&1; then $(MAKE) --no-print-directory manifests; fi
	@echo "release: now commit, merge, and tag: git tag -a v$(VERSION) -m 'userapi $(VERSION)' && git push origin v$(VERSION)"

release-check: ## Fail unless Chart.yaml version == appVersion (SemVer) and, with GIT_TAG=vX.Y.Z, the tag matches
	$(PIPELINES_PYTHON) scripts/release/release.py check $(if $(GIT_TAG),--tag "$(GIT_TAG)")

# Optional settings (IMAGE_REPOSITORY, NAMESPACE, HELM_VALUES, ...) are read from the
# environment or the command line; scripts/pipelines/helm-deploy.sh documents each.
helm-deploy: ## helm upgrade --install --rollback-on-failure --wait + helm test: DEPLOY_ENV=dev|prod TAG=<image tag>, KUBECONFIG set
	bash scripts/pipelines/helm-deploy.sh "$(DEPLOY_ENV)" "$(TAG)"

promote: ## GitOps: set the userapi image TAG (and with CHART_REVISION=vX.Y.Z the chart's release tag) in what Argo CD syncs (PROMOTE_FILES)
	@if [[ -z "$(strip $(PROMOTE_FILES))" ]]; then echo "promote: no PROMOTE_FILES (deploy/argocd/values/*.yaml, deploy/argocd/apps/*.yaml)" >&2; exit 2; fi
	$(PIPELINES_PYTHON) scripts/release/release.py set-image-tag "$(TAG)" $(PROMOTE_FILES)
	$(if $(CHART_REVISION),$(PIPELINES_PYTHON) scripts/release/release.py set-chart-revision "$(CHART_REVISION)" $(PROMOTE_FILES))
