// Command release makes a quarks-job release (see tools/internal/release): `make release
// VERSION=X.Y.Z [RELEASE_REGISTRY=host:port]` runs it.
//
//	release --version 0.2.0 --checkout . --out bin/release/0.2.0 [--registry host:port] [--chart-repository host:port/path] [--source URL]
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"code.cloudfoundry.org/quarks-job/tools/internal/release"
)

func main() {
	var opts release.Options
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Build the controller, webhook and persister images and the chart of a release; push them to a registry",
		Long: `Builds the three images (tagged vX.Y.Z, binaries stamped with vX.Y.Z and the
commit) into an OCI image layout under --out, writes a CycloneDX bill of
materials per image, stamps a copy of the chart with version X.Y.Z,
appVersion vX.Y.Z and the images' digests, and packages it. With --registry,
pushes the images there (under the repository paths the chart's values name)
and the chart to oci://<chart repository>/quarks-job:X.Y.Z. digests.txt lists
every image, and the chart, by digest.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Log = cmd.OutOrStdout()
			r, err := release.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(cmd.OutOrStdout(), "released %s (revision %s): %s\n", r.Version, r.Revision, r.Digests); err != nil {
				return err
			}
			if r.ChartReference != "" {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "install: helm install quarks-job %s --version %s%s\n", r.ChartReference, r.Version, r.HelmFlags)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Version, "version", "", "release version X.Y.Z (required)")
	f.StringVar(&opts.Checkout, "checkout", ".", "root of the repository to release")
	f.StringVar(&opts.Out, "out", "", "folder for the images, bills of materials, chart archive and digests.txt (required)")
	f.StringVar(&opts.Registry, "registry", "", "registry host[:port] to push the images to; empty: push nothing")
	f.StringVar(&opts.ChartRepository, "chart-repository", "", "OCI repository host[:port]/path for the chart; default <registry>/charts")
	f.StringVar(&opts.Source, "source", "", "URL of the source repository, for the images' org.opencontainers.image.source")
	f.BoolVar(&opts.AllowDirty, "allow-dirty", false, "release a checkout with uncommitted changes (its images name a commit they were not built from)")
	_ = cmd.MarkFlagRequired("version")
	_ = cmd.MarkFlagRequired("out")
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
