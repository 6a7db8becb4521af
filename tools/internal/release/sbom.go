package release

import (
	"debug/buildinfo"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"code.cloudfoundry.org/quarks-job/tools/internal/ociimage"
)

// writeSBOM writes the CycloneDX bill of materials of img: the image, the one binary in it, and
// every Go module linked into that binary, as the Go toolchain recorded them in it (so nothing
// is guessed from go.mod: a module that is required but not linked is not listed). The image has
// nothing else: its only other files are /etc/passwd and /etc/group. No timestamp, so the same
// build gives the same file.
func writeSBOM(file string, img Image, repository string, provenance ociimage.Provenance, info *buildinfo.BuildInfo) error {
	imageRef := "image"
	binaryRef := "binary"
	imageComponent := cdx.Component{
		BOMRef:  imageRef,
		Type:    cdx.ComponentTypeContainer,
		Name:    repository,
		Version: provenance.Version,
		// purl-spec, type oci: the digest is the version; repository_url says where it lives.
		PackageURL: fmt.Sprintf("pkg:oci/%s@%s?repository_url=%s&tag=%s", path.Base(repository),
			strings.ReplaceAll(img.Digest, ":", "%3A"), repository, provenance.Version),
	}
	if provenance.Source != "" {
		imageComponent.ExternalReferences = &[]cdx.ExternalReference{{Type: cdx.ERTypeVCS, URL: provenance.Source}}
	}
	binary := cdx.Component{
		BOMRef:     binaryRef,
		Type:       cdx.ComponentTypeApplication,
		Name:       info.Path,
		Version:    provenance.Version,
		PackageURL: goPURL(info.Main.Path, provenance.Version),
		Properties: &[]cdx.Property{{Name: "revision", Value: provenance.Revision}},
	}
	components := []cdx.Component{binary, {
		BOMRef: "go-stdlib", Type: cdx.ComponentTypeLibrary, Name: "std", Version: info.GoVersion,
		PackageURL: goPURL("std", info.GoVersion),
	}}
	dependsOn := []string{"go-stdlib"}
	// The repository's other modules (the api module) are built from the same commit as the
	// binary: they are replaced by their directories (go.mod: replace ../api), which -trimpath
	// leaves out of the build information.
	repositoryModules := path.Dir(info.Main.Path) + "/"
	for _, dep := range info.Deps {
		module := dep
		if dep.Replace != nil {
			module = dep.Replace
		}
		v := module.Version
		if strings.HasPrefix(dep.Path, repositoryModules) {
			module, v = dep, provenance.Version
		}
		c := cdx.Component{BOMRef: module.Path + "@" + v, Type: cdx.ComponentTypeLibrary, Name: module.Path, Version: v, PackageURL: goPURL(module.Path, v)}
		if module.Sum != "" {
			// The Go checksum database's hash of the module (h1:...), which `go mod verify` checks.
			c.Properties = &[]cdx.Property{{Name: "go.sum", Value: module.Sum}}
		}
		components = append(components, c)
		dependsOn = append(dependsOn, c.BOMRef)
	}

	bom := cdx.NewBOM()
	bom.Metadata = &cdx.Metadata{Component: &imageComponent}
	bom.Components = &components
	bom.Dependencies = &[]cdx.Dependency{
		{Ref: imageRef, Dependencies: &[]string{binaryRef}},
		{Ref: binaryRef, Dependencies: &dependsOn},
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	encoder := cdx.NewBOMEncoder(f, cdx.BOMFileFormatJSON)
	encoder.SetPretty(true)
	if err := encoder.Encode(bom); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing the bill of materials %s: %w", file, err)
	}
	return f.Close()
}

// goPURL is the package URL of a Go module version (purl-spec, type golang).
func goPURL(module, version string) string {
	return "pkg:golang/" + module + "@" + url.PathEscape(version)
}
