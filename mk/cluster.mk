# The local single-node cluster (tools/cmd/cluster), images built without
# Docker (tools/cmd/images), and the kind path for machines with Docker.
# Included by the Makefile. See docs/development.md.

CLUSTER_DIR     := $(BIN)/cluster
IMAGES_DIR      := $(BIN)/images
TOOLS_BIN       := $(BIN)/tools
CLUSTER         := $(TOOLS_BIN)/cluster
IMAGES          := $(TOOLS_BIN)/images
COREDNS         := $(TOOLS_BIN)/coredns
REGISTRY        := 127.0.0.1:5050
CLUSTER_FLAGS   := --dir $(CLUSTER_DIR) --assets $(KUBE_BIN) --coredns $(COREDNS) --images $(IMAGES_DIR) --registry $(REGISTRY)
CLUSTER_KUBECONFIG := $(CLUSTER_DIR)/kubeconfig

# Must match the cluster package's SandboxImage.
PAUSE_IMAGE     := registry.k8s.io/pause:3.10
BUSYBOX_IMAGE   := docker.io/library/busybox:latest
IMAGE_REPO      ?= docker.io/cfcontainerization
IMAGE_TAG       ?= dev
# TAG=main package dir; the images tool skips a component not written yet.
PRODUCT_IMAGES  := $(IMAGE_REPO)/quarks-job:$(IMAGE_TAG)=controller/cmd/quarks-job \
                   $(IMAGE_REPO)/quarks-job-persister:$(IMAGE_TAG)=persister/cmd/persister \
                   $(IMAGE_REPO)/quarks-job-webhook:$(IMAGE_TAG)=webhook/cmd/webhook
E2E_IMAGES      := $(IMAGE_REPO)/quarks-job-e2e-probe:$(IMAGE_TAG)=e2e/cluster/probe
export E2E_PROBE_IMAGE := $(IMAGE_REPO)/quarks-job-e2e-probe:$(IMAGE_TAG)
# The product suite (e2e/product) installs the chart with these images.
export E2E_IMAGE_REPO := $(IMAGE_REPO)
export E2E_IMAGE_TAG  := $(IMAGE_TAG)
# The helm upgrade test pins the persister to this second tag of the same image: on the local
# cluster the suite tags it in the registry (E2E_REGISTRY), with kind the e2e target loads it.
export E2E_PERSISTER_PINNED_TAG := e2e-pinned

DEBIAN_PACKAGES := containerd runc containernetworking-plugins iptables iproute2 busybox-static
E2E_TIMEOUT     ?= 20m
E2E_FLAGS       ?=

# A suite on a cluster: the pieces the local, chaos and kind recipes share.
# always_down starts a recipe whose cluster comes down however it ends ($(1) names the step, $(2)
# brings the cluster down); the recipe exits with the first failure's code.
always_down = trap 'exit 130' INT TERM; trap 'echo "--- $(1)"; $(2) || exit 1' EXIT;
# e2e_env is the environment of the e2e suite against the cluster of kubeconfig $(1), pulling the
# images from registry $(2).
e2e_env = KUBECONFIG=$(1) KUBECTL=$(KUBE_BIN)/kubectl E2E_REGISTRY=$(2) E2E_IMAGE_PULL_POLICY=Always
# The local cluster's steps.
local_down = $(CLUSTER) down $(CLUSTER_FLAGS)
local_up = echo "--- cluster-up"; $(CLUSTER) up $(CLUSTER_FLAGS)
local_images = echo "--- images"; $(IMAGES) build --out $(IMAGES_DIR) $(IMAGE_BUILD_FLAGS) --push $(REGISTRY) $(PRODUCT_IMAGES) $(E2E_IMAGES)


##@ Local cluster (no Docker; needs root)

.PHONY: cluster-packages
cluster-packages: ## Install containerd, runc, the CNI plugins, iptables and busybox-static from Debian when missing.
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: cluster-tools
cluster-tools: ## Build the cluster and images commands and CoreDNS into bin/tools.
	@mkdir -p $(TOOLS_BIN)
	@test -x $(COREDNS) || echo "--- cluster-tools: building the cluster tools and CoreDNS (first time: 3-6 minutes)"
	cd tools && go build -o $(TOOLS_BIN)/ ./cmd/cluster ./cmd/images
	cd tools/coredns && GOWORK=off go build -ldflags "-s -w" -o $(COREDNS) .

.PHONY: base-images
base-images: cluster-tools cluster-packages ## Build the pause and busybox images the cluster serves (bin/images).
	$(IMAGES) build --out $(IMAGES_DIR) --busybox $(BUSYBOX_IMAGE) $(PAUSE_IMAGE)=tools/cmd/pause

.PHONY: cluster-up
cluster-up: kube cluster-packages cluster-tools base-images ## Start the local single-node cluster; prints its kubeconfig (bin/cluster/kubeconfig).
	$(CLUSTER) up $(CLUSTER_FLAGS)

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and remove its processes, mounts, devices, iptables rules and cgroups.
	@if [ -x $(CLUSTER) ]; then $(CLUSTER) down $(CLUSTER_FLAGS); \
	elif [ -e $(CLUSTER_DIR)/host-state.json ]; then echo "a cluster ran but $(CLUSTER) is gone: make cluster-tools first" >&2; exit 1; \
	else echo "no local cluster"; fi

# The images say what they were built from: a version (VERSION=X.Y.Z, or each module's git
# describe), the commit and SOURCE_URL (mk/release.mk), as OCI annotations.
IMAGE_BUILD_FLAGS = --source $(SOURCE_URL) $(if $(VERSION),--version v$(VERSION))

.PHONY: images
images: cluster-tools ## Build the operator, persister and webhook images without Docker; push them when the local cluster runs.
	$(IMAGES) build --out $(IMAGES_DIR) $(IMAGE_BUILD_FLAGS) $$(test -e $(CLUSTER_DIR)/pids/registry.pid && echo --push $(REGISTRY)) $(PRODUCT_IMAGES) $(E2E_IMAGES)

# The whole local end-to-end run: the cluster always comes down again, and
# the recipe exits with the first failure's code. Afterwards the lifecycle
# test checks that cluster-down leaves nothing behind and cluster-up works
# again.
.PHONY: test-e2e-local
test-e2e-local: kube cluster-packages cluster-tools base-images ## cluster-up, images, the e2e suite, cluster-down (always), then the cluster lifecycle test.
	@$(call always_down,cluster-down,$(local_down)) \
	$(local_up); $(local_images); \
	echo "--- e2e suite"; cd e2e && $(call e2e_env,$(CLUSTER_KUBECONFIG),$(REGISTRY)) \
		go test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) $(E2E_FLAGS) ./...; \
	echo "--- release e2e (two releases of a clone, helm install and upgrade from the registry)"; \
	cd $(CURDIR)/tools && go build -o $(TOOLS_BIN)/release ./cmd/release; \
	cd $(CURDIR)/e2e && KUBECONFIG=$(CLUSTER_KUBECONFIG) E2E_REGISTRY=$(REGISTRY) E2E_RELEASE_TOOL=$(TOOLS_BIN)/release \
		go test -tags e2e,release -count=1 -timeout 25m -v -run '^TestReleaseUpgrade$$' ./product/
	@echo "--- cluster lifecycle (down leaves nothing, up works again)"
	cd tools && go test -tags localcluster -count=1 -timeout 10m -run TestLifecycle -v ./cmd/cluster/

.PHONY: e2e-local
e2e-local: test-e2e-local ## The e2e suite on the local cluster: cluster-up, images, tests, cluster-down.

# The chaos suite (e2e/product/chaos_test.go, docs/reliability.md): faults injected while runs
# are under way. It kills processes of the cluster, so it runs on the local cluster only.
CHAOS_PODS    ?= 1000
CHAOS_TIMEOUT ?= 40m
CHAOS_REPORT  := $(BIN)/chaos/last.md

.PHONY: chaos
chaos: kube cluster-packages cluster-tools base-images ## Faults under load on the local cluster: controller SIGKILLs, failover, an API server restart, 1,000 outputs; prints a pass/fail table.
	@$(call always_down,cluster-down,$(local_down)) \
	$(local_up); $(local_images); \
	echo "--- chaos suite"; cd e2e && $(call e2e_env,$(CLUSTER_KUBECONFIG),$(REGISTRY)) \
		CHAOS_PODS=$(CHAOS_PODS) CHAOS_REPORT=$(CHAOS_REPORT) \
		CHAOS_RESTART_APISERVER="$(CLUSTER) restart kube-apiserver --down 15s $(CLUSTER_FLAGS)" \
		go test -tags e2e,chaos -count=1 -v -run '^TestChaos$$' -timeout $(CHAOS_TIMEOUT) ./product/

.PHONY: bench-e2e
bench-e2e: ## On a running local cluster (make cluster-up images): container exit → output Secret over 100 real pods.
	cd e2e && KUBECONFIG=$(CLUSTER_KUBECONFIG) E2E_REGISTRY=$(REGISTRY) E2E_IMAGE_PULL_POLICY=Always \
		go test -tags e2e -count=1 -run '^$$' -bench ExitToSecret -benchtime 1x -timeout 30m ./product/
