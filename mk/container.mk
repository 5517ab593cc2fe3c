# The container image: built from the Dockerfile with podman (or Docker), offline.
# REGISTRY/IMAGE/TAG name what `make push` publishes, e.g.
#   make push REGISTRY=ghcr.io/acme TAG=1.2.3

TEST_TARGETS += test-image

REGISTRY ?= localhost
IMAGE ?= $(REGISTRY)/userapi
TAG ?= dev
CONTAINER_ENV = IMAGE=$(IMAGE) TAG=$(TAG)

.PHONY: image image-run image-test image-lint image-size test-image compose-up compose-down compose-check push

image: ## Build the container image $(IMAGE):$(TAG) from the Dockerfile (podman, offline stand-in bases)
	$(CONTAINER_ENV) scripts/container/build.sh

image-lint: ## hadolint the Dockerfile (zero findings)
	$(PYTEST) -m container -k hadolint

image-run: ## Run the image read-only on 127.0.0.1:8080 with a volume (Ctrl-C stops it)
	CONTAINERS_CONF=$(CURDIR)/scripts/container/containers.conf podman run --rm -it --read-only --cap-drop=ALL \
	  --security-opt=no-new-privileges -v userapi-data:/data -p 127.0.0.1:8080:8080 \
	  -e AUTH_TOKENS $(IMAGE):$(TAG)

image-test: ## Container smoke test against $(IMAGE):$(TAG) (build it first with make image)
	$(CONTAINER_ENV) $(PYTEST) -m container -k smoke

image-size: ## Runtime image size by layer
	$(CONTAINER_ENV) scripts/container/size.sh

test-image: image ## Lint, build, smoke-test the image and check compose.yaml
	$(CONTAINER_ENV) $(PYTEST) -m container
	@$(MAKE) --no-print-directory image-size

compose-check: ## Validate compose.yaml with podman-compose
	$(PYTEST) -m container -k compose

compose-up: ## Start userapi + PostgreSQL with podman-compose (generates ./secrets on first run)
	scripts/container/compose-secrets.sh
	CONTAINERS_CONF=$(CURDIR)/scripts/container/containers.conf "$$(scripts/tools/ensure-venv.sh)/podman-compose" up -d

compose-down: ## Stop the compose stack (data volume kept)
	CONTAINERS_CONF=$(CURDIR)/scripts/container/containers.conf "$$(scripts/tools/ensure-venv.sh)/podman-compose" down

push: ## Push $(IMAGE):$(TAG) (log in to the registry first); not run by tests
	CONTAINERS_CONF=$(CURDIR)/scripts/container/containers.conf podman push $(IMAGE):$(TAG)
