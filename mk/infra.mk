# Infrastructure and operations: Terraform for AWS, the k3s quick start,
# the Grafana dashboard and Prometheus alerts (deploy/terraform, deploy/k3s,
# deploy/monitoring). All checks run offline; see scripts/infra/test_*.py.

TEST_TARGETS += test-infra

.PHONY: test-infra test-monitoring k3s-dry-run

# INFRA_TF_VALIDATE=1 adds `terraform init -backend=false && terraform validate` (needs the registry).
test-infra: ## Terraform (python-hcl2, checkov, fmt), k3s script (shellcheck, dry run), dashboards and alerts (promtool, live Prometheus)
	$(NEED_USERAPI)
	$(PYTEST) -m "infra or monitoring"

test-monitoring: ## Dashboard and alerts only: promtool check/test rules and a live Prometheus against userapi
	$(NEED_USERAPI)
	$(PYTEST) -m monitoring

k3s-dry-run: ## Print what deploy/k3s/install.sh would do (IMAGE=ghcr.io/<owner>/userapi HOST=api.example.com)
	deploy/k3s/install.sh --dry-run --image "$(or $(IMAGE),ghcr.io/example/userapi)" --host "$(or $(HOST),userapi.example.test)"
