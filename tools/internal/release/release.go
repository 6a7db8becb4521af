// Package release makes a quarks-job release from a checkout: the controller, webhook and
// persister images, built as the tests build them (tools/internal/ociimage) and stamped with the
// version; a software bill of materials per image; the chart, stamped with the version, the
// appVersion and the images' digests and packaged as `helm package` does; and, given a
// registry, both pushed to it, the chart as an OCI artifact (`helm install oci://...`).
//
// Versions: the release version X.Y.Z is the chart's version (Helm wants SemVer without a v);
// the images, their tags, the binaries and the chart's appVersion say vX.Y.Z, as do the module
// tags controller/vX.Y.Z (Go's convention for modules in subdirectories).
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/semver"
	"helm.sh/helm/v3/pkg/chart/loader"

	"code.cloudfoundry.org/quarks-job/tools/internal/gitversion"
	"code.cloudfoundry.org/quarks-job/tools/internal/ociimage"
)

// ChartDir is the chart in the checkout.
const ChartDir = "charts/quarks-job"

// Component is one image of a release.
type Component struct {
	// Name is the component's key in the chart's values (controller.image, ...) and in its
	// digest annotation.
	Name string
	// Main is the Go main package of its binary, relative to the checkout.
	Main string
}

// Components are the images a release builds, in the order they are reported.
var Components = []Component{
	{Name: "controller", Main: "controller/cmd/quarks-job"},
	{Name: "webhook", Main: "webhook/cmd/webhook"},
	{Name: "persister", Main: "persister/cmd/persister"},
}

// Options say what to release and where to.
type Options struct {
	// Version is the release version, X.Y.Z (SemVer, no v).
	Version string
	// Checkout is the root of the repository to release from.
	Checkout string
	// Out receives the image layout, the bills of materials, the chart archive and digests.txt.
	Out string
	// Registry (host[:port]) receives the images, under the repository paths the chart's
	// values name: docker.io/cfcontainerization/quarks-job goes to
	// <Registry>/cfcontainerization/quarks-job. Empty: nothing is pushed.
	Registry string
	// ChartRepository (host[:port]/path) receives the chart as <ChartRepository>/quarks-job:X.Y.Z;
	// default <Registry>/charts.
	ChartRepository string
	// Source is the URL of the source repository, for the images' annotations.
	Source string
	// AllowDirty releases a checkout with uncommitted changes (for tests): its images name a
	// commit they were not built from.
	AllowDirty bool
	// Log receives progress lines; nil: none.
	Log io.Writer
}

// Image is one released image.
type Image struct {
	Component string
	// Reference is the image's name and tag as the chart names it,
	// docker.io/cfcontainerization/quarks-job:v0.2.0.
	Reference string
	// Digest is its manifest's digest, sha256:...
	Digest string
	// SBOM is the file of its CycloneDX bill of materials.
	SBOM string
	// Pushed is where it was pushed to; empty when it was not.
	Pushed string
}

// Result is what a release made.
type Result struct {
	Version, AppVersion, Revision string
	Images                        []Image
	// Chart is the chart archive, as helm package writes it.
	Chart string
	// ChartReference is oci://<ChartRepository>/quarks-job, ChartDigest the manifest digest of
	// the pushed chart; empty when it was not pushed.
	ChartReference, ChartDigest string
	// HelmFlags are what the helm command needs besides to reach the chart repository
	// (" --plain-http" for one on this machine).
	HelmFlags string
	// Digests is the file listing every image (and the pushed chart) with its digest.
	Digests string
}

// Run makes the release opts describe.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := checkVersion(opts.Version); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.ChartRepository == "" && opts.Registry != "" {
		opts.ChartRepository = opts.Registry + "/charts"
	}
	revision, err := gitversion.Revision(opts.Checkout)
	if err != nil {
		return nil, err
	}
	dirty, err := gitversion.Dirty(opts.Checkout)
	if err != nil {
		return nil, err
	}
	if dirty && !opts.AllowDirty {
		return nil, errors.New("the checkout has uncommitted changes or untracked files (git status): a release is the build of one commit, so commit or stash them first")
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	chart, err := loader.Load(filepath.Join(opts.Checkout, ChartDir))
	if err != nil {
		return nil, fmt.Errorf("loading the chart %s: %w", ChartDir, err)
	}
	result := &Result{Version: opts.Version, AppVersion: "v" + opts.Version, Revision: revision}
	provenance := ociimage.Provenance{Version: result.AppVersion, Revision: revision, Source: opts.Source}

	images, err := buildImages(ctx, opts, chart, provenance)
	if err != nil {
		return nil, err
	}
	for _, img := range images {
		result.Images = append(result.Images, img.Image)
	}
	if opts.Registry != "" {
		for i, img := range images {
			pushed, err := pushImage(ctx, opts.Registry, img)
			if err != nil {
				return nil, err
			}
			result.Images[i].Pushed = pushed
			logf(opts.Log, "pushed %s@%s", pushed, img.Digest)
		}
	}

	if result.Chart, err = packageChart(chart, opts.Out, result); err != nil {
		return nil, err
	}
	logf(opts.Log, "packaged %s", result.Chart)
	if opts.ChartRepository != "" {
		if result.ChartDigest, err = pushChart(result.Chart, opts.ChartRepository, chart.Name(), opts.Version, opts.Log); err != nil {
			return nil, err
		}
		result.ChartReference = "oci://" + opts.ChartRepository + "/" + chart.Name()
		if plainHTTP(registryHost(opts.ChartRepository)) {
			result.HelmFlags = " --plain-http"
		}
	}
	if result.Digests, err = writeDigests(opts.Out, result); err != nil {
		return nil, err
	}
	return result, nil
}

// logf reports progress; a log that cannot be written does not stop a release.
func logf(log io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(log, format+"\n", args...)
}

// checkVersion accepts X.Y.Z and X.Y.Z-pre (SemVer); Helm refuses a chart version with a v.
func checkVersion(version string) error {
	if strings.HasPrefix(version, "v") || !semver.IsValid("v"+version) || semver.Build("v"+version) != "" ||
		strings.Count(strings.SplitN(version, "-", 2)[0], ".") != 2 {
		return fmt.Errorf("version %q: want X.Y.Z or X.Y.Z-pre.N (SemVer, without a v; the images and tags get the v)", version)
	}
	return nil
}

// writeDigests lists every released artifact by its pinned reference, one a line.
func writeDigests(out string, r *Result) (string, error) {
	var lines []string
	for _, img := range r.Images {
		lines = append(lines, img.Reference+"@"+img.Digest)
	}
	if r.ChartDigest != "" {
		lines = append(lines, r.ChartReference+":"+r.Version+"@"+r.ChartDigest)
	}
	file := filepath.Join(out, "digests.txt")
	return file, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// registryHost is the host[:port] of an OCI repository host[:port]/path.
func registryHost(repository string) string {
	return strings.SplitN(repository, "/", 2)[0]
}

// plainHTTP: registries on the machine itself are spoken to without TLS, as go-containerregistry
// does by itself; Helm needs telling.
func plainHTTP(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
