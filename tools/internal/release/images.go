package release

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/chart"

	"code.cloudfoundry.org/quarks-job/api/version"
	"code.cloudfoundry.org/quarks-job/tools/internal/ociimage"
)

// builtImage is a released image and the image itself.
type builtImage struct {
	Image
	repository, tag string
	img             v1.Image
}

// buildImages builds every component's image into the OCI image layout <out>/images, which
// keeps the manifests (and so the digests) the registry gets, and writes their bills of
// materials into <out>/sbom.
func buildImages(ctx context.Context, opts Options, ch *chart.Chart, provenance ociimage.Provenance) ([]builtImage, error) {
	layoutDir := filepath.Join(opts.Out, "images")
	if err := os.RemoveAll(layoutDir); err != nil {
		return nil, err
	}
	imageLayout, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return nil, err
	}
	sbomDir := filepath.Join(opts.Out, "sbom")
	if err := os.MkdirAll(sbomDir, 0o755); err != nil {
		return nil, err
	}
	var images []builtImage
	for _, c := range Components {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		repository, err := imageRepository(ch, c.Name)
		if err != nil {
			return nil, err
		}
		logf(opts.Log, "building %s:%s from %s", repository, provenance.Version, c.Main)
		built, err := buildImage(opts.Checkout, c, repository, provenance, sbomDir)
		if err != nil {
			return nil, fmt.Errorf("image of the %s (%s): %w", c.Name, c.Main, err)
		}
		if err := imageLayout.AppendImage(built.img, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": built.Reference,
		})); err != nil {
			return nil, err
		}
		images = append(images, built)
	}
	return images, nil
}

func buildImage(checkout string, c Component, repository string, provenance ociimage.Provenance, sbomDir string) (builtImage, error) {
	binDir, err := os.MkdirTemp("", "quarks-job-release-")
	if err != nil {
		return builtImage{}, err
	}
	defer func() { _ = os.RemoveAll(binDir) }()
	binary := filepath.Join(binDir, filepath.Base(c.Main))
	// The module's own go.mod decides the dependencies (GOWORK=off), as for anyone who builds
	// this module version on its own; the workspace is for developing the modules together.
	err = ociimage.CompileGo(filepath.Join(checkout, c.Main), binary, ociimage.GoBuild{
		LDFlags:  version.LDFlags(provenance.Version, provenance.Revision),
		TrimPath: true,
		Env:      []string{"GOWORK=off"},
	})
	if err != nil {
		return builtImage{}, err
	}
	spec, err := ociimage.Binary(binary, "/"+filepath.Base(c.Main))
	if err != nil {
		return builtImage{}, err
	}
	spec.Annotations = provenance.Annotations()
	img, err := ociimage.Build(spec)
	if err != nil {
		return builtImage{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return builtImage{}, err
	}
	built := builtImage{
		Image:      Image{Component: c.Name, Reference: repository + ":" + provenance.Version, Digest: digest.String()},
		repository: repository,
		tag:        provenance.Version,
		img:        img,
	}
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return builtImage{}, fmt.Errorf("reading the build information of %s: %w", binary, err)
	}
	built.SBOM = filepath.Join(sbomDir, filepath.Base(repository)+".cdx.json")
	if err := writeSBOM(built.SBOM, built.Image, repository, provenance, info); err != nil {
		return builtImage{}, err
	}
	return built, nil
}

// imageRepository is <component>.image.repository of the chart's values: the release builds the
// images the chart names.
func imageRepository(ch *chart.Chart, component string) (string, error) {
	values, _ := ch.Values[component].(map[string]any)
	image, _ := values["image"].(map[string]any)
	repository, _ := image["repository"].(string)
	if repository == "" {
		return "", fmt.Errorf("the chart's values have no %s.image.repository", component)
	}
	if _, err := name.NewRepository(repository); err != nil {
		return "", fmt.Errorf("%s.image.repository %q: %w", component, repository, err)
	}
	return repository, nil
}

// pushImage pushes img to registry under its repository's path and returns where it went.
// Credentials come from the Docker configuration (docker login, or helm registry login's
// config.json in DOCKER_CONFIG), as for crane.
func pushImage(ctx context.Context, registry string, img builtImage) (string, error) {
	repository, err := name.NewRepository(img.repository)
	if err != nil {
		return "", err
	}
	target, err := name.NewTag(fmt.Sprintf("%s/%s:%s", registry, repository.RepositoryStr(), img.tag))
	if err != nil {
		return "", fmt.Errorf("image name in registry %q: %w", registry, err)
	}
	if err := remote.Write(target, img.img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("pushing %s to %s (is the registry up, are you logged in?): %w", img.Reference, target, err)
	}
	return target.String(), nil
}
