package release

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"code.cloudfoundry.org/quarks-job/tools/internal/mirror"
	"code.cloudfoundry.org/quarks-job/tools/internal/ociimage"
)

const source = "https://code.cloudfoundry.org/quarks-job"

// TestRelease releases this checkout to the local cluster's registry program, started on a
// random loopback port, and reads everything back as a user would: the chart by name and
// version as `helm install oci://... --version` finds it, the images by the digests the chart
// pins, their annotations, and the version their binaries print.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the three images")
	}
	server := httptest.NewServer(mirror.Handler(log.New(io.Discard, "", 0)))
	t.Cleanup(server.Close)
	registryHost := strings.TrimPrefix(server.URL, "http://")
	// No credentials and no Helm state of the machine's user.
	home := t.TempDir()
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "docker"))
	t.Setenv("HELM_CONFIG_HOME", filepath.Join(home, "helm", "config"))
	t.Setenv("HELM_CACHE_HOME", filepath.Join(home, "helm", "cache"))
	t.Setenv("HELM_DATA_HOME", filepath.Join(home, "helm", "data"))

	checkout, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var progress strings.Builder
	r, err := Run(t.Context(), Options{
		Version: "0.2.0", Checkout: checkout, Out: out, Registry: registryHost, Source: source,
		AllowDirty: true, // the test runs in a working checkout
		Log:        &progress,
	})
	t.Logf("release progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if r.AppVersion != "v0.2.0" || len(r.Images) != len(Components) {
		t.Fatalf("result %+v", r)
	}

	// The chart, by name and version, as helm pull/install oci://... --version 0.2.0 finds it.
	pulled := pullChart(t, r.ChartReference, "0.2.0")
	shown, err := yaml.Marshal(pulled.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helm show chart %s --version 0.2.0:\n%s", r.ChartReference, shown)
	if pulled.Metadata.Version != "0.2.0" || pulled.Metadata.AppVersion != "v0.2.0" {
		t.Errorf("pulled chart version %q appVersion %q, want 0.2.0 and v0.2.0", pulled.Metadata.Version, pulled.Metadata.AppVersion)
	}
	wantImages := map[string]string{}
	for _, img := range r.Images {
		if got := pulled.Metadata.Annotations[DigestAnnotation(img.Component)]; got != img.Digest {
			t.Errorf("the pulled chart records %s for the %s image, want %s", got, img.Component, img.Digest)
		}
		wantImages[img.Component] = img.Reference + "@" + img.Digest
	}
	if got := renderedImages(t, pulled); !maps.Equal(got, wantImages) {
		t.Errorf("the pulled chart runs images %v, want %v", got, wantImages)
	}

	// The images, by the digests the chart pins.
	for _, img := range r.Images {
		repository, err := name.NewRepository(img.Reference[:strings.LastIndex(img.Reference, ":")])
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.NewDigest(registryHost + "/" + repository.RepositoryStr() + "@" + img.Digest)
		if err != nil {
			t.Fatal(err)
		}
		pushed, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("the %s image is not in the registry by its digest: %v", img.Component, err)
		}
		checkImage(t, img, pushed, r.Revision)
		checkSBOM(t, img)
	}

	digests, err := os.ReadFile(r.Digests)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("digests.txt:\n%s", digests)
	lines := strings.Split(strings.TrimSpace(string(digests)), "\n")
	if len(lines) != len(Components)+1 || lines[len(lines)-1] != r.ChartReference+":0.2.0@"+r.ChartDigest {
		t.Errorf("digests.txt lists %q, want the three images and the chart %s:0.2.0@%s", lines, r.ChartReference, r.ChartDigest)
	}
	for i, img := range r.Images {
		if lines[i] != img.Reference+"@"+img.Digest {
			t.Errorf("digests.txt line %d: %q, want %s@%s", i+1, lines[i], img.Reference, img.Digest)
		}
	}
}

// pullChart pulls the chart as `helm pull oci://... --version` does.
func pullChart(t *testing.T, ref, version string) *chart.Chart {
	t.Helper()
	client, err := registry.NewClient(registry.ClientOptPlainHTTP())
	if err != nil {
		t.Fatal(err)
	}
	pull := action.NewPullWithOpts(action.WithConfig(&action.Configuration{RegistryClient: client}))
	pull.Settings = cli.New()
	pull.Version = version
	pull.PlainHTTP = true
	pull.DestDir = t.TempDir()
	if _, err := pull.Run(ref); err != nil {
		t.Fatalf("helm pull %s --version %s: %v", ref, version, err)
	}
	ch, err := loader.Load(filepath.Join(pull.DestDir, "quarks-job-"+version+".tgz"))
	if err != nil {
		t.Fatalf("loading the pulled chart: %v", err)
	}
	return ch
}

// renderedImages are the images the chart's Deployments run and the persister image they
// inject, by component, as helm template renders them with no values set.
func renderedImages(t *testing.T, ch *chart.Chart) map[string]string {
	t.Helper()
	install := action.NewInstall(&action.Configuration{})
	install.ClientOnly, install.DryRun = true, true
	install.ReleaseName, install.Namespace = "quarks-job", "quarks-job"
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	rel, err := install.Run(ch, nil)
	if err != nil {
		t.Fatalf("rendering the pulled chart: %v", err)
	}
	images := map[string]string{}
	for _, manifest := range releaseutil.SplitManifests(rel.Manifest) {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(manifest), &d); err != nil || d.Kind != "Deployment" {
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		images[d.Labels["app.kubernetes.io/component"]] = c.Image
		for _, arg := range c.Args {
			if image, ok := strings.CutPrefix(arg, "--persister-image="); ok {
				if images["persister"] != "" && images["persister"] != image {
					t.Errorf("the controller and the webhook are given persister images %s and %s", images["persister"], image)
				}
				images["persister"] = image
			}
		}
	}
	return images
}

// checkImage: the annotations in the manifest and the config, and the version the binary prints.
func checkImage(t *testing.T, img Image, pushed v1.Image, revision string) {
	t.Helper()
	want := map[string]string{
		ociimage.AnnotationVersion:  "v0.2.0",
		ociimage.AnnotationRevision: revision,
		ociimage.AnnotationSource:   source,
	}
	manifest, err := pushed.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	config, err := pushed.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(manifest.Annotations, want) || !maps.Equal(config.Config.Labels, want) {
		t.Errorf("%s: manifest annotations %v, config labels %v; want %v", img.Reference, manifest.Annotations, config.Config.Labels, want)
	}
	raw, err := json.MarshalIndent(map[string]any{"mediaType": manifest.MediaType, "annotations": manifest.Annotations, "config.Labels": config.Config.Labels, "entrypoint": config.Config.Entrypoint}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s@%s:\n%s", img.Reference, img.Digest, raw)

	if runtime.GOOS != "linux" {
		return
	}
	binary := extract(t, pushed, strings.TrimPrefix(config.Config.Entrypoint[0], "/"))
	printed, err := exec.Command(binary, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", binary, err)
	}
	line := strings.TrimSpace(string(printed))
	t.Logf("%s: %s --version: %s", img.Component, config.Config.Entrypoint[0], line)
	if wantLine := "v0.2.0 (revision " + revision[:12] + ", " + runtime.Version() + ")"; !strings.HasSuffix(line, wantLine) {
		t.Errorf("%s --version printed %q, want ... %s", img.Component, line, wantLine)
	}
}

// extract copies one file of the image's only layer into a temporary executable.
func extract(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("no %s in the image", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != path {
			continue
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), filepath.Base(path))
		if err := os.WriteFile(file, content, 0o755); err != nil {
			t.Fatal(err)
		}
		return file
	}
}

// checkSBOM: the bill of materials names the image by digest and the modules of its binary.
func checkSBOM(t *testing.T, img Image) {
	t.Helper()
	f, err := os.Open(img.SBOM)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(f, cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("%s: %v", img.SBOM, err)
	}
	if bom.Metadata == nil || bom.Metadata.Component == nil || !strings.Contains(bom.Metadata.Component.PackageURL, strings.ReplaceAll(img.Digest, ":", "%3A")) {
		t.Errorf("%s: the image component does not name the digest %s: %+v", img.SBOM, img.Digest, bom.Metadata)
	}
	var modules []string
	for _, c := range *bom.Components {
		modules = append(modules, c.Name+"@"+c.Version)
	}
	for _, want := range []string{"code.cloudfoundry.org/quarks-job/api@v0.2.0", "std@" + runtime.Version()} {
		if !slices.Contains(modules, want) {
			t.Errorf("%s lists %d components, not %s", img.SBOM, len(modules), want)
		}
	}
	if img.Component != "persister" && !slices.ContainsFunc(modules, func(m string) bool { return strings.HasPrefix(m, "sigs.k8s.io/controller-runtime@v") }) {
		t.Errorf("%s does not list controller-runtime", img.SBOM)
	}
	t.Logf("%s: %d components", filepath.Base(img.SBOM), len(modules))
}

func TestCheckVersion(t *testing.T) {
	for _, ok := range []string{"0.2.0", "1.0.0-rc.1", "10.20.30"} {
		if err := checkVersion(ok); err != nil {
			t.Errorf("checkVersion(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "v0.2.0", "0.2", "1", "0.2.0+build.1", "latest", "0.02.0"} {
		if err := checkVersion(bad); err == nil {
			t.Errorf("checkVersion(%q): want an error", bad)
		}
	}
}

func TestPlainHTTP(t *testing.T) {
	for registry, want := range map[string]bool{
		"127.0.0.1:5061": true, "localhost:5000": true, "[::1]:5000": true, "127.0.0.1": true,
		"docker.io": false, "ghcr.io": false, "registry.example:5000": false, "10.0.0.1:5000": false,
	} {
		if got := plainHTTP(registry); got != want {
			t.Errorf("plainHTTP(%q) = %v, want %v", registry, got, want)
		}
	}
}
