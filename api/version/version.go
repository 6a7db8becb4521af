// Package version is what every quarks-job binary reports about its build: the release version,
// the git revision and the Go version, for --version, the startup log and the build_info metric.
//
// It lives in the api module because every component's module requires that one already: one
// package, linked into each binary, so the controller, the webhook, the persister and
// kubectl-qjob report the same fields in the same words. Each binary is still linked on its own,
// so each reports its own version.
//
// A release build sets the version and the revision at link time (see LDFlags); the Makefile
// and the image builder do. Without them, a build falls back on what the Go toolchain recorded
// in the binary: the main module's version (v0.2.0 for `go install ...@v0.2.0`, "(devel)" for a
// build in a checkout) and the VCS revision (absent in workspace builds).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Package is this package's import path, which -X flags name.
const Package = "code.cloudfoundry.org/quarks-job/api/version"

// MetricName is the gauge every component with a metrics endpoint serves, always 1, labeled
// with Labels.
const MetricName = "quarks_job_build_info"

// Set by the linker: -X Package.version=v0.2.0 -X Package.revision=<commit>.
var (
	version  string
	revision string
)

// Devel is the version of a build that was not given one and whose module version the Go
// toolchain did not know either (a build in a checkout).
const Devel = "(devel)"

// Info describes one binary's build.
type Info struct {
	// Version is the release version, v0.2.0 (the semver of the module tag controller/v0.2.0),
	// or Devel.
	Version string
	// Revision is the git commit the binary was built from; empty when unknown.
	Revision string
	// Modified: the checkout had uncommitted changes (known only from the toolchain's record).
	Modified bool
	// GoVersion is the Go release that built the binary, go1.26.8.
	GoVersion string
}

// Get is the running binary's build.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, revision, bi)
}

// resolve prefers what the linker set, then what the toolchain recorded.
func resolve(linkedVersion, linkedRevision string, bi *debug.BuildInfo) Info {
	info := Info{Version: linkedVersion, Revision: linkedRevision, GoVersion: runtime.Version()}
	if bi == nil {
		bi = &debug.BuildInfo{}
	}
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = Devel
	}
	if info.Revision == "" {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	return info
}

// String is the line --version prints after the program's name:
// "v0.2.0 (revision 0123456789ab, go1.26.8)".
func (i Info) String() string {
	revision := "unknown"
	if i.Revision != "" {
		revision = i.Revision
		if len(revision) > 12 {
			revision = revision[:12]
		}
	}
	if i.Modified {
		revision += ", modified"
	}
	return fmt.Sprintf("%s (revision %s, %s)", i.Version, revision, i.GoVersion)
}

// Labels are the build_info metric's labels for component (controller, webhook).
func (i Info) Labels(component string) map[string]string {
	return map[string]string{"component": component, "version": i.Version, "revision": i.Revision, "goversion": i.GoVersion}
}

// LDFlags are the linker flags that make a binary report version and revision.
func LDFlags(version, revision string) string {
	return fmt.Sprintf("-X %s.version=%s -X %s.revision=%s", Package, version, Package, revision)
}
