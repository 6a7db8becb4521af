package ociimage

import (
	"archive/tar"
	"io"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestBinaryImage(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(binary, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec, err := Binary(binary, "/tool")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	config, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(config.Config.Entrypoint) != 1 || config.Config.Entrypoint[0] != "/tool" || config.Config.User != "65532:65532" || config.OS != "linux" {
		t.Errorf("config %+v", config.Config)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v; want 1", len(layers), err)
	}
	files := layerFiles(t, layers[0])
	if h, ok := files["tool"]; !ok || h.Mode != 0o755 || h.Size != int64(len("#!binary")) {
		t.Errorf("tool in layer: %+v", h)
	}
	if h, ok := files["tmp/"]; !ok || h.Mode != 0o1777 {
		t.Errorf("tmp in layer: %+v", h)
	}

	again, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("the same inputs gave digests %s and %s", d1, d2)
	}
}

func TestBusyboxLinksEveryApplet(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(binary, []byte("bb"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec, err := Busybox(binary, []string{"bin/sh", "usr/bin/wget", "bin/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	files := layerFiles(t, layers[0])
	for _, link := range []string{"bin/sh", "usr/bin/wget"} {
		if h := files[link]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
			t.Errorf("%s: %+v, want a link to /bin/busybox", link, h)
		}
	}
	if h := files["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg {
		t.Errorf("bin/busybox: %+v", h)
	}
}

func layerFiles(t *testing.T, layer interface{ Uncompressed() (io.ReadCloser, error) }) map[string]*tar.Header {
	t.Helper()
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
	}
}

func TestDirImage(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/local/bin/kube"), []byte("kube"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("kube", filepath.Join(root, "usr/local/bin/kube-proxy")); err != nil {
		t.Fatal(err)
	}
	spec, err := Dir(root, []string{"/usr/local/bin/kube-proxy"})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	config, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(config.Config.Entrypoint) != 1 || config.Config.Entrypoint[0] != "/usr/local/bin/kube-proxy" || config.Config.User != "" {
		t.Errorf("config %+v", config.Config)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v; want 1", len(layers), err)
	}
	files := layerFiles(t, layers[0])
	if h, ok := files["usr/local/bin/kube"]; !ok || h.Mode != 0o755 || h.Size != 4 {
		t.Errorf("kube in layer: %+v", h)
	}
	if h, ok := files["usr/local/bin/kube-proxy"]; !ok || h.Typeflag != tar.TypeSymlink || h.Linkname != "kube" {
		t.Errorf("kube-proxy in layer: %+v", h)
	}
	if h, ok := files["usr/local/bin/"]; !ok || h.Typeflag != tar.TypeDir {
		t.Errorf("usr/local/bin in layer: %+v", h)
	}
}

func TestProvenanceIsInLabelsAndManifestAnnotations(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(binary, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec, err := Binary(binary, "/tool")
	if err != nil {
		t.Fatal(err)
	}
	spec.Annotations = Provenance{Version: "v0.2.0", Revision: "0123456789abcdef", Source: "https://example.org/quarks-job"}.Annotations()
	img, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"org.opencontainers.image.version":  "v0.2.0",
		"org.opencontainers.image.revision": "0123456789abcdef",
		"org.opencontainers.image.source":   "https://example.org/quarks-job",
	}
	config, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(config.Config.Labels, want) {
		t.Errorf("config labels %v, want %v", config.Config.Labels, want)
	}
	manifest, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(manifest.Annotations, want) {
		t.Errorf("manifest annotations %v, want %v", manifest.Annotations, want)
	}
	if manifest.MediaType != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want %s", manifest.MediaType, types.OCIManifestSchema1)
	}
	if _, ok := config.Config.Labels["org.opencontainers.image.created"]; ok || !config.Created.Equal(epoch) {
		t.Errorf("created %v and label %q: want the epoch and no label, so digests stay reproducible", config.Created, config.Config.Labels["org.opencontainers.image.created"])
	}

	again, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("the same inputs gave digests %s and %s", d1, d2)
	}
	// An empty field is left out rather than written empty.
	if got := (Provenance{Version: "v1"}).Annotations(); !maps.Equal(got, map[string]string{"org.opencontainers.image.version": "v1"}) {
		t.Errorf("annotations of a version alone: %v", got)
	}
}
