// Package catalog holds no product code. Its test is the catalog of
// malformed input: it gives the whole product — a kube-apiserver with the
// chart's CRD and webhook configurations, the webhook binary, the
// controller's reconciler and output endpoint, and the persister binary on
// real files — bad QuarksJob manifests and bad output files, checks that no
// part crashes or hangs and that nothing already written is lost, and
// records what a user sees and where. The record is the table in
// docs/reliability.md: `make catalog` rewrites it, and the test fails when
// it differs from what the product does.
package catalog
