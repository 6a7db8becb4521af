# The kind path: kind built from its Go module, a kind node image built
# offline from Debian's packages and the Kubernetes binaries of tools/kube,
# and `make e2e` on a kind cluster made from it. Nothing is pulled. Included
# by the Makefile. See docs/development.md, "The kind path".

KIND_VERSION    ?= v0.33.0
KIND            := $(TOOLS_BIN)/kind
KIND_CLUSTER    ?= quarks-job
KIND_KUBECONFIG := $(BIN)/kind.kubeconfig
KIND_DIR        := $(BIN)/kind
KIND_IMAGES_DIR := $(KIND_DIR)/images
KUBEADM         := $(KUBE_BIN)/kubeadm
PAUSE_BIN       := $(KIND_DIR)/pause
KIND_NODE_IMAGE_FILE := $(KIND_DIR)/node-image
# The e2e cluster: one control plane, two workers, so that the pods of a run
# land on different nodes. tools/kind/cluster.yaml is a single node.
KIND_CONFIG     ?= tools/kind/cluster-3.yaml
# The registry every node's containerd mirrors docker.io to (the images of
# the product, the e2e probe and busybox; the suite pushes the pinned
# persister tag to it): the local cluster's registry (tools/cmd/cluster
# registry) in a container on kind's network, published on the host.
KIND_REGISTRY_NAME  := quarks-job-kind-registry
# (tools/kind/cluster*.yaml mirror this address to the registry too.)
KIND_REGISTRY_HOST  := 127.0.0.1:5051
KIND_REGISTRY_IMAGE := quarks-job/kind-registry:$(IMAGE_TAG)
# kind runs `docker run --privileged` for every node. Where the daemon
# refuses that (its capability bounding set lacks a capability), kind gets
# tools/kind/nopriv/docker first on PATH, which spells privileged mode out.
KIND_PATH        = $(shell docker run --rm --privileged --entrypoint /bin/true $$(cat $(KIND_NODE_IMAGE_FILE) 2>/dev/null) >/dev/null 2>&1 \
	|| echo $(CURDIR)/tools/kind/nopriv:)$(PATH)

##@ kind (Docker, no registry needed)

.PHONY: kind
kind: ## Build kind from its Go module into bin/tools.
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) GOWORK=off go install sigs.k8s.io/kind@$(KIND_VERSION)

.PHONY: kubeadm
kubeadm: kube ## Build kubeadm (the kind node needs it) from the Kubernetes Go module into bin/kube.
	cd tools/kube && GOWORK=off go build -ldflags "-s -w $(KUBE_LDFLAGS)" -o $(KUBEADM) ./kubeadm

.PHONY: kind-node-image
kind-node-image: kubeadm cluster-tools ## Build the kind node image offline (debootstrap, Kubernetes from Go modules, control-plane images); needs root and Docker; cached by its inputs.
	@mkdir -p $(KIND_DIR)
	@command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
	cd tools && go build -ldflags "-s -w" -o $(PAUSE_BIN) ./cmd/pause
	KUBE_VERSION=$(KUBE_VERSION) KUBE_BIN=$(KUBE_BIN) COREDNS=$(COREDNS) PAUSE=$(PAUSE_BIN) \
		IMAGES_TOOL=$(IMAGES) OUT=$(KIND_DIR) bash tools/kind/node-image.sh

.PHONY: kind-images
kind-images: cluster-tools cluster-packages ## Build the product, e2e probe, busybox and registry images for the kind path (bin/kind/images).
	$(IMAGES) build --out $(KIND_IMAGES_DIR) $(IMAGE_BUILD_FLAGS) --busybox $(BUSYBOX_IMAGE) $(PRODUCT_IMAGES) $(E2E_IMAGES)
	$(IMAGES) build --out $(KIND_DIR) $(KIND_REGISTRY_IMAGE)=tools/cmd/cluster
	docker load -q -i $(KIND_DIR)/kind-registry.tar

.PHONY: kind-up
kind-up: kind kind-node-image kind-create ## Create the kind cluster $(KIND_CLUSTER) from the offline node image ($(KIND_CONFIG)).

# kind-up without building anything first (make e2e built it already).
.PHONY: kind-create
kind-create:
	bash tools/kind/host-sysctls.sh save $(KIND_DIR)/host-sysctls
	PATH="$(KIND_PATH)" $(KIND) create cluster --name $(KIND_CLUSTER) --image $$(cat $(KIND_NODE_IMAGE_FILE)) \
		--config $(KIND_CONFIG) --kubeconfig $(KIND_KUBECONFIG) --wait 5m

.PHONY: kind-registry
kind-registry: ## Start the registry the kind nodes mirror docker.io to (after kind-up, kind-images).
	docker rm -f $(KIND_REGISTRY_NAME) >/dev/null 2>&1 || true
	docker run -d --name $(KIND_REGISTRY_NAME) --network kind -p $(KIND_REGISTRY_HOST):5000 \
		-v $(KIND_IMAGES_DIR):/images:ro $(KIND_REGISTRY_IMAGE) registry --registry 0.0.0.0:5000 --images /images --dir /tmp >/dev/null
	@for i in $$(seq 60); do curl -fsS http://$(KIND_REGISTRY_HOST)/v2/library/busybox/tags/list >/dev/null 2>&1 && exit 0; sleep 1; done; \
		docker logs $(KIND_REGISTRY_NAME) >&2; echo "the registry did not serve busybox within 60 s" >&2; exit 1

.PHONY: kind-down
kind-down: ## Delete the kind cluster $(KIND_CLUSTER), its registry and (when unused) kind's Docker network.
	-docker rm -f -v $(KIND_REGISTRY_NAME) >/dev/null 2>&1
	PATH="$(KIND_PATH)" $(KIND) delete cluster --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG)
	@# kind keeps its Docker network "kind" for the next cluster: remove it when no container uses it.
	@if docker network inspect kind >/dev/null 2>&1 && [ -z "$$(docker network inspect kind -f '{{range .Containers}}x{{end}}')" ]; then \
		docker network rm kind >/dev/null && echo "removed the Docker network kind"; fi
	bash tools/kind/host-sysctls.sh restore $(KIND_DIR)/host-sysctls

# The whole kind end-to-end run: the cluster always comes down again, and the
# recipe exits with the first failure's code.
.PHONY: e2e
e2e: kind kind-node-image kind-images ## Create a kind cluster (1 control plane, 2 workers) from the offline node image, serve the images to it, run the e2e suite, delete the cluster (always).
	@$(call always_down,kind-down,$(MAKE) --no-print-directory -C $(CURDIR) kind-down) \
	echo "--- kind-up"; $(MAKE) --no-print-directory kind-create; \
	echo "--- registry"; $(MAKE) --no-print-directory kind-registry; \
	echo "--- e2e suite"; cd e2e && $(call e2e_env,$(KIND_KUBECONFIG),$(KIND_REGISTRY_HOST)) \
		go test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) $(E2E_FLAGS) ./...

.PHONY: e2e-kind-down
e2e-kind-down: kind-down ## Delete the kind cluster of make e2e (make e2e does it itself).
