# quarks-job: run `make help` for the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN          := $(CURDIR)/bin
MODULES      := api controller persister webhook kubectl-qjob e2e tools
KUBE_VERSION := v1.37.2
KUBE_MINOR   := 37
# Kubernetes and etcd built from their Go modules (tools/kube, tools/etcd):
# the envtest assets and the local cluster's components.
KUBE_BIN     := $(BIN)/kube
KUBE_COMPONENTS := kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
export KUBEBUILDER_ASSETS := $(KUBE_BIN)
# The test control plane starts in seconds, but much slower on a busy machine.
export KUBEBUILDER_CONTROLPLANE_START_TIMEOUT ?= 3m
export KUBEBUILDER_CONTROLPLANE_STOP_TIMEOUT ?= 1m

GO_TEST_FLAGS ?=
# One cgo setting for every build (tests, images, Kubernetes): changing it
# rebuilds everything, and the images need static binaries.
export CGO_ENABLED := 0

##@ General

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z0-9_.-]+:.*##/ {printf "  %-20s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# What every binary reports (--version, the build_info metric; the api module's version
# package): VERSION=X.Y.Z for a release build, otherwise its module's version from git describe
# of the module's tags (controller/v0.2.0 → v0.2.0, v0.2.0-3-g<commit> after it; "(devel)" before
# the first tag), and the commit. The images tool does the same for the images.
VERSION_PKG     := code.cloudfoundry.org/quarks-job/api/version
REVISION        := $(shell git rev-parse HEAD 2>/dev/null)
module_version   = $(if $(VERSION),v$(VERSION),$(patsubst $(1)/%,%,$(shell git describe --tags --abbrev=12 --match '$(1)/v[0-9]*' 2>/dev/null)))
version_ldflags  = -X $(VERSION_PKG).version=$(call module_version,$(1)) -X $(VERSION_PKG).revision=$(REVISION)

##@ Development

.PHONY: build
build: ## Build the operator, persister, webhook and kubectl-qjob binaries into bin/, stamped with their versions (--version).
	cd controller && go build -ldflags "$(call version_ldflags,controller)" -o $(BIN)/quarks-job ./cmd/quarks-job
	cd persister && go build -ldflags "$(call version_ldflags,persister)" -o $(BIN)/persister ./cmd/persister
	cd webhook && go build -ldflags "$(call version_ldflags,webhook)" -o $(BIN)/webhook ./cmd/webhook
	cd kubectl-qjob && go build -ldflags "$(call version_ldflags,kubectl-qjob)" -o $(BIN)/kubectl-qjob ./cmd/kubectl-qjob

# Where make install-plugin puts kubectl-qjob: a directory on the PATH.
PLUGIN_DIR ?= /usr/local/bin

.PHONY: install-plugin
install-plugin: ## Install the kubectl plugin kubectl-qjob into PLUGIN_DIR (/usr/local/bin): then `kubectl qjob --help`.
	cd kubectl-qjob && go build -ldflags "$(call version_ldflags,kubectl-qjob)" -o $(PLUGIN_DIR)/kubectl-qjob ./cmd/kubectl-qjob
	@# kubectl's own shell completion completes "kubectl qjob ..." through this command.
	printf '#!/bin/sh\nexec kubectl-qjob __complete "$$@"\n' > $(PLUGIN_DIR)/kubectl_complete-qjob
	chmod +x $(PLUGIN_DIR)/kubectl_complete-qjob
	@echo "installed $(PLUGIN_DIR)/kubectl-qjob; try: kubectl qjob --help"

# What `make generate` writes; `make verify` compares it with git.
GENERATED := api charts/quarks-job/files/crds charts/quarks-job/files/rbac charts/quarks-job/files/webhook

.PHONY: generate
generate: ## Generate deepcopy code and the CRD from the API types, the controller's RBAC from its markers, the webhook configurations from webhook/internal/endpoints.
	cd tools && go tool controller-gen object paths=../api/...
	cd tools && go tool controller-gen crd:crdVersions=v1,generateEmbeddedObjectMeta=true paths=../api/... output:crd:artifacts:config=../charts/quarks-job/files/crds
	cd tools && go tool controller-gen rbac:roleName=quarks-job-controller paths=../controller/... output:rbac:artifacts:config=../charts/quarks-job/files/rbac/controller
	cd tools && go run ./cmd/crdenum ../charts/quarks-job/files/crds/quarks.cloudfoundry.org_quarksjobs.yaml \
		spec.template.spec.template.spec.restartPolicy=Never,OnFailure
	@mkdir -p charts/quarks-job/files/webhook
	cd webhook && go run ./cmd/webhookgen -o ../charts/quarks-job/files/webhook/configurations.yaml

.PHONY: verify
verify: generate ## Fail when a generated file differs from what is checked in.
	@git diff --exit-code -- $(GENERATED) || { echo "generated files drifted: run 'make generate' and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { git status --porcelain -- $(GENERATED); echo "untracked generated files: run 'make generate' and commit" >&2; exit 1; }

GOLANGCI_LINT := $(BIN)/tools/golangci-lint

.PHONY: lint
lint: golangci-lint ## No build output in git; gofmt and golangci-lint (.golangci.yml: go vet, staticcheck and more) over every module.
	bash mk/tracked-files.sh
	@out=$$(gofmt -l $(MODULES)); test -z "$$out" || { echo "gofmt would change: $$out" >&2; exit 1; }
	@failed=; for m in $(MODULES); do echo "golangci-lint: $$m"; \
		(cd $$m && $(GOLANGCI_LINT) run --allow-parallel-runners --config $(CURDIR)/.golangci.yml ./...) || failed="$$failed $$m"; \
	done; test -z "$$failed" || { echo "golangci-lint found problems in:$$failed" >&2; exit 1; }

.PHONY: golangci-lint
golangci-lint: ## Build golangci-lint from its Go module (tools/lint) into bin/tools.
	@mkdir -p $(BIN)/tools
	cd tools/lint && GOWORK=off go build -o $(GOLANGCI_LINT) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: test
test: verify lint test-unit test-e2e-local ## Every test: generated files, lint, unit and integration tests, end-to-end on the local cluster.

.PHONY: test-unit
test-unit: kube ## Unit and integration (envtest) tests of every module.
	for m in $(MODULES); do (cd $$m && go test $(GO_TEST_FLAGS) ./...); done

# How many times make bench runs each benchmark; the table shows medians.
BENCH_COUNT ?= 1
BENCH_DIR   := $(BIN)/bench
# The benchmarks of the figures of docs/performance.md, by package.
BENCH_PACKAGES := ./internal/controller/quarksjob ./internal/outputendpoint ./cmd/quarks-job
BENCH_FIGURES  := ^Benchmark(FanIn|TriggerToJob|ExitToSecret|Scale)$$

.PHONY: bench
bench: kube ## Measure the performance figures (docs/performance.md) against a local API server and print the pass/fail table; raw output in bin/bench.
	@mkdir -p $(BENCH_DIR)
	@raw=$(BENCH_DIR)/raw-$$(date -u +%Y%m%dT%H%M%SZ).txt; status=0; \
	echo "--- make bench: 11 minutes on 2 cores, more when they are busy; raw output in $$raw"; \
	echo "--- $$(date -u +%Y-%m-%dT%H:%MZ), $$(nproc) cores, $$(awk '/MemTotal/ {printf "%.0f", $$2/1048576}' /proc/meminfo) GiB, load average before: $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	(cd controller && go test -p 1 -run '^$$' -bench '$(BENCH_FIGURES)' -benchtime 1x -count $(BENCH_COUNT) -timeout 60m $(BENCH_PACKAGES)) \
		2>&1 | tee $$raw || status=$$?; \
	cp $$raw $(BENCH_DIR)/last.txt; \
	echo "--- $$(date -u +%Y-%m-%dT%H:%MZ), load average after: $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	(cd tools && go run ./cmd/benchtable $$raw) || status=1; \
	echo "--- compare two runs: cd tools && go tool benchstat $(BENCH_DIR)/raw-A.txt $(BENCH_DIR)/raw-B.txt"; \
	exit $$status

# How long `make fuzz` runs each fuzz target.
FUZZ_TIME ?= 30s
# The fuzz targets, as module:package:name. `go test` runs their corpora
# (testdata/fuzz/<name>/ and the seeds in the code) as ordinary tests.
FUZZ_TARGETS := \
	api:./upload/protocol:FuzzParseOutput \
	api:./upload/protocol:FuzzDecodeRequest \
	controller:./internal/output:FuzzCompute \
	controller:./internal/references:FuzzOf \
	webhook:./internal/inject:FuzzInject

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZ_TIME (30s); a crasher lands in the package's testdata/fuzz/ (not part of make test).
	@failed=; for target in $(FUZZ_TARGETS); do \
		IFS=: read -r module pkg name <<< "$$target"; \
		echo "--- $$name ($$module/$${pkg#./}) for $(FUZZ_TIME)"; \
		(cd $$module && go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZ_TIME) $$pkg) || failed="$$failed $$name"; \
	done; test -z "$$failed" || { echo "fuzzing found failures in:$$failed (the inputs are in testdata/fuzz/; fix the code and commit them as regression cases)" >&2; exit 1; }

.PHONY: catalog
catalog: kube ## Rewrite the malformed-input catalog in docs/reliability.md from what the product does.
	cd controller && go test -count=1 -run '^TestCatalog$$' ./internal/catalog -args -update

.PHONY: run
run: kube ## Start a local control plane, install the CRD and run the operator against it.
	cd tools && go run ./cmd/controlplane --assets $(KUBE_BIN) --dir $(BIN)/run -- go run ../controller/cmd/quarks-job

##@ The product on the local cluster

HELM         := $(BIN)/tools/helm
HELM_VERSION := v3.22.0
DEMO_EXAMPLE ?= docs/examples/output.yaml

.PHONY: helm
helm: ## Build the helm command from its Go module into bin/tools.
	@mkdir -p $(BIN)/tools
	@test -x $(HELM) || echo "--- helm: building helm $(HELM_VERSION) from its Go module (first time: 2-4 minutes)"
	GOBIN=$(BIN)/tools GOWORK=off go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: demo
demo: helm cluster-up images ## Local cluster, images, the chart, the output example, and the Secret it wrote.
	KUBECONFIG=$(CLUSTER_KUBECONFIG) $(HELM) upgrade --install quarks-job charts/quarks-job \
		--namespace quarks-job --create-namespace --wait --timeout 5m \
		--set controller.image.tag=$(IMAGE_TAG),webhook.image.tag=$(IMAGE_TAG),persister.image.tag=$(IMAGE_TAG)
	$(KUBE_BIN)/kubectl --kubeconfig $(CLUSTER_KUBECONFIG) apply -f $(DEMO_EXAMPLE)
	$(KUBE_BIN)/kubectl --kubeconfig $(CLUSTER_KUBECONFIG) wait --for=create secret/output-credentials --timeout 3m
	@echo "--- the Secret the job's output became:"
	@$(KUBE_BIN)/kubectl --kubeconfig $(CLUSTER_KUBECONFIG) get secret output-credentials \
		-o go-template='{{range $$k, $$v := .data}}{{$$k}}={{$$v | base64decode}}{{"\n"}}{{end}}'
	@echo "--- export KUBECONFIG=$(CLUSTER_KUBECONFIG) to look around; make cluster-down to stop"

##@ Kubernetes from Go modules

.PHONY: kube
kube: ## Build Kubernetes and etcd from their Go modules into bin/kube (cached by Go).
	@mkdir -p $(KUBE_BIN)
	@if [ -x $(KUBE_BIN)/kube ]; then echo "--- kube: checking bin/kube is up to date (seconds)"; \
	else echo "--- kube: building Kubernetes $(KUBE_VERSION) and etcd from their Go modules (first time on this machine: 7-25 minutes on 2 cores; cached afterwards)"; fi
	cd tools/kube && GOWORK=off go build -ldflags "-s -w $(KUBE_LDFLAGS)" -o $(KUBE_BIN)/kube .
	cd tools/etcd && GOWORK=off go build -ldflags "-s -w" -o $(KUBE_BIN)/etcd .
	@for c in $(KUBE_COMPONENTS); do ln -sf kube $(KUBE_BIN)/$$c; done

KUBE_LDFLAGS := $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(p).gitVersion=$(KUBE_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(KUBE_MINOR) \
	-X $(p).gitTreeState=clean -X $(p).buildDate=1970-01-01T00:00:00Z)

-include mk/*.mk

# Targets the included files extend; empty until they do.
.PHONY: test-e2e-local
