# The Helm chart (charts/quarks-job): its tests render it with the Helm Go SDK, so no helm binary
# and no cluster are needed. Included by the Makefile.

##@ Helm chart

.PHONY: chart-test
chart-test: kube ## Render the chart with the Helm SDK and check the manifests, the values schema, lint and the docs examples.
	cd e2e && go test $(GO_TEST_FLAGS) ./chart/

.PHONY: chart-lint
chart-lint: ## Lint the chart with the Helm SDK's lint package (as helm lint).
	cd e2e && go test $(GO_TEST_FLAGS) -run 'TestLint|TestSchema' ./chart/
