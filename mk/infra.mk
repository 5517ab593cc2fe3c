# Infrastructure and operations: Terraform for AWS, the k3s quick start,
# the Grafana dashboard and Prometheus alerts (deploy/terraform, deploy/k3s,
# deploy/monitoring). All checks run offline; see scripts/infra/.

TEST_TARGETS += test-infra

.PHONY: test-infra test-monitoring k3s-dry-run

test-infra: ## Terraform (python-hcl2, checkov, fmt), k3s script (shellcheck, dry run), dashboards and alerts (promtool, live Prometheus)
	scripts/infra/test-infra.sh

test-monitoring: ## Dashboard and alerts only: promtool check/test rules and a live Prometheus against userapi
	scripts/infra/test-monitoring.sh

k3s-dry-run: ## Print what deploy/k3s/install.sh would do (IMAGE=ghcr.io/<owner>/userapi HOST=api.example.com)
	deploy/k3s/install.sh --dry-run --image "$(or $(IMAGE),ghcr.io/example/userapi)" --host "$(or $(HOST),userapi.example.test)"
