package release

import (
	"fmt"
	"io"
	"maps"
	"os"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/registry"
)

// DigestAnnotation is the Chart.yaml annotation that records the digest of a component's
// released image; the chart's image helper pins the appVersion tag to it.
func DigestAnnotation(component string) string {
	return "quarks.cloudfoundry.org/" + component + "-image-digest"
}

// packageChart stamps ch with the release's version, appVersion and image digests and writes
// it as <out>/quarks-job-X.Y.Z.tgz, as `helm package --version --app-version` does. The
// checked-in chart stays as it is: a checkout is no release.
func packageChart(ch *chart.Chart, out string, r *Result) (string, error) {
	stamped := *ch
	metadata := *ch.Metadata
	metadata.Version = r.Version
	metadata.AppVersion = r.AppVersion
	metadata.Annotations = maps.Clone(ch.Metadata.Annotations)
	if metadata.Annotations == nil {
		metadata.Annotations = map[string]string{}
	}
	for _, img := range r.Images {
		metadata.Annotations[DigestAnnotation(img.Component)] = img.Digest
	}
	stamped.Metadata = &metadata
	file, err := chartutil.Save(&stamped, out)
	if err != nil {
		return "", fmt.Errorf("packaging the chart: %w", err)
	}
	return file, nil
}

// pushChart pushes the chart archive to repository as <repository>/<name>:<version>, as
// `helm push chart.tgz oci://<repository>` does, and returns the manifest's digest.
// Credentials are Helm's (helm registry login) or Docker's.
func pushChart(archive, repository, name, version string, log io.Writer) (string, error) {
	options := []registry.ClientOption{registry.ClientOptWriter(log)}
	if plainHTTP(registryHost(repository)) {
		options = append(options, registry.ClientOptPlainHTTP())
	}
	client, err := registry.NewClient(options...)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		return "", err
	}
	ref := fmt.Sprintf("%s/%s:%s", repository, name, version)
	pushed, err := client.Push(data, ref)
	if err != nil {
		return "", fmt.Errorf("pushing the chart to oci://%s (is the registry up, are you logged in?): %w", ref, err)
	}
	return pushed.Manifest.Digest, nil
}
