# Releases (tools/cmd/release): one version for every component, the chart as an OCI artifact.
# Included by the Makefile. See docs/development.md, "Releases".

# Where the images' org.opencontainers.image.source points.
SOURCE_URL       ?= https://code.cloudfoundry.org/quarks-job
# Registry (host:port) the images and the chart are pushed to; empty: build only.
RELEASE_REGISTRY ?=
# OCI repository of the chart; empty: $(RELEASE_REGISTRY)/charts.
RELEASE_CHART_REPOSITORY ?=
RELEASE_DIR       = $(BIN)/release/$(VERSION)
# The modules a release tags <module>/vX.Y.Z (Go's convention for modules in subdirectories).
RELEASE_MODULES  := api controller persister webhook kubectl-qjob

##@ Releases

.PHONY: release
release: ## Images, bills of materials and chart of release VERSION=X.Y.Z into bin/release/X.Y.Z; pushed to RELEASE_REGISTRY=host:port when given.
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=X.Y.Z [RELEASE_REGISTRY=host:port] [RELEASE_CHART_REPOSITORY=host:port/path]" >&2; exit 1; }
	cd tools && go run ./cmd/release --version $(VERSION) --checkout $(CURDIR) --out $(RELEASE_DIR) --source $(SOURCE_URL) \
		$(if $(RELEASE_REGISTRY),--registry $(RELEASE_REGISTRY)) $(if $(RELEASE_CHART_REPOSITORY),--chart-repository $(RELEASE_CHART_REPOSITORY))

.PHONY: release-tags
release-tags: ## Tag HEAD as <module>/vVERSION for every shipped module (annotated tags; push them yourself).
	@test -n "$(VERSION)" || { echo "usage: make release-tags VERSION=X.Y.Z" >&2; exit 1; }
	@test -z "$$(git status --porcelain)" || { echo "the checkout has uncommitted changes: a release is the build of one commit" >&2; exit 1; }
	@for m in $(RELEASE_MODULES); do git tag -a -m "quarks-job $$m v$(VERSION)" $$m/v$(VERSION) && echo "tagged $$m/v$(VERSION)"; done
	@echo "push them with: git push origin $(foreach m,$(RELEASE_MODULES),$(m)/v$(VERSION))"
