# kind, built from its Go module, and a kind node image built offline from
# Debian's packages and the Kubernetes binaries of tools/kube. Included by
# the Makefile. See docs/development.md, "The kind path".

KIND_DIR        := $(BIN)/kind
KUBEADM         := $(KUBE_BIN)/kubeadm
PAUSE_BIN       := $(KIND_DIR)/pause
KIND_NODE_IMAGE_FILE := $(KIND_DIR)/node-image
# kind runs `docker run --privileged` for every node. Where the daemon
# refuses that (its capability bounding set lacks a capability), kind gets
# tools/kind/nopriv/docker first on PATH, which spells privileged mode out.
KIND_PATH        = $(shell docker run --rm --privileged --entrypoint /bin/true $$(cat $(KIND_NODE_IMAGE_FILE)) >/dev/null 2>&1 \
	|| echo $(CURDIR)/tools/kind/nopriv:)$(PATH)
KIND_CONFIG     ?= tools/kind/cluster.yaml

##@ kind (Docker, no registry)

.PHONY: kind
kind: ## Build kind from its Go module into bin/tools.
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) GOWORK=off go install sigs.k8s.io/kind@$(KIND_VERSION)

.PHONY: kubeadm
kubeadm: kube ## Build kubeadm (the kind node needs it) from the Kubernetes Go module into bin/kube.
	cd tools/kube && GOWORK=off CGO_ENABLED=0 go build -ldflags "-s -w $(KUBE_LDFLAGS)" -o $(KUBEADM) ./kubeadm

.PHONY: kind-node-image
kind-node-image: kubeadm cluster-tools ## Build the kind node image offline (debootstrap, Kubernetes from Go modules, control-plane images); needs root and Docker; cached by its inputs.
	@mkdir -p $(KIND_DIR)
	cd tools && CGO_ENABLED=0 go build -ldflags "-s -w" -o $(PAUSE_BIN) ./cmd/pause
	KUBE_VERSION=$(KUBE_VERSION) KUBE_BIN=$(KUBE_BIN) COREDNS=$(COREDNS) PAUSE=$(PAUSE_BIN) \
		IMAGES_TOOL=$(IMAGES) OUT=$(KIND_DIR) bash tools/kind/node-image.sh

.PHONY: kind-up
kind-up: kind kind-node-image ## Create the kind cluster $(KIND_CLUSTER) from the offline node image ($(KIND_CONFIG)).
	bash tools/kind/host-sysctls.sh save $(KIND_DIR)/host-sysctls
	PATH="$(KIND_PATH)" $(KIND) create cluster --name $(KIND_CLUSTER) --image $$(cat $(KIND_NODE_IMAGE_FILE)) \
		--config $(KIND_CONFIG) --kubeconfig $(KIND_KUBECONFIG) --wait 5m

.PHONY: kind-down
kind-down: ## Delete the kind cluster $(KIND_CLUSTER).
	PATH="$(KIND_PATH)" $(KIND) delete cluster --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG)
	@# kind keeps its Docker network "kind" for the next cluster: remove it when no container uses it.
	@if docker network inspect kind >/dev/null 2>&1 && [ -z "$$(docker network inspect kind -f '{{range .Containers}}x{{end}}')" ]; then \
		docker network rm kind >/dev/null && echo "removed the Docker network kind"; fi
	bash tools/kind/host-sysctls.sh restore $(KIND_DIR)/host-sysctls
