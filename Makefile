# userapi — every command a developer or CI needs. `make help` lists them.
# CI (.ci/run) runs `make test`, the same command README.md gives.

SHELL := /bin/bash
.DEFAULT_GOAL := help

SWIFT ?= swift
# Build stamp (see Package.swift): exported so `swift build` bakes it in.
VERSION ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' deploy/helm/userapi/Chart.yaml 2>/dev/null || echo 0.0.0-dev)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
export USERAPI_VERSION ?= $(VERSION)
export USERAPI_COMMIT ?= $(COMMIT)

.PHONY: help
help: ## List targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

include mk/*.mk

.PHONY: test
test: $(TEST_TARGETS) ## Every test: Swift, API contract, chart, manifests, pipelines, infra, container, drills
