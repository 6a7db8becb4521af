package version

import (
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	recorded := &debug.BuildInfo{
		Main:     debug.Module{Path: "code.cloudfoundry.org/quarks-job/controller", Version: "v0.1.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "1111111111111111111111111111111111111111"}, {Key: "vcs.modified", Value: "true"}},
	}
	devel := &debug.BuildInfo{Main: debug.Module{Version: Devel}}
	for _, tc := range []struct {
		name                     string
		linkedVersion, linkedRev string
		bi                       *debug.BuildInfo
		want                     Info
	}{
		{"linked wins", "v0.2.0", "2222222222222222222222222222222222222222", recorded,
			Info{Version: "v0.2.0", Revision: "2222222222222222222222222222222222222222"}},
		{"recorded by the toolchain", "", "", recorded,
			Info{Version: "v0.1.0", Revision: "1111111111111111111111111111111111111111", Modified: true}},
		{"a workspace build", "", "", devel, Info{Version: Devel}},
		{"no build information", "", "", nil, Info{Version: Devel}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.GoVersion = runtime.Version()
			if got := resolve(tc.linkedVersion, tc.linkedRev, tc.bi); got != tc.want {
				t.Errorf("resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		info Info
		want string
	}{
		{Info{Version: "v0.2.0", Revision: "0123456789abcdef0123456789abcdef01234567", GoVersion: "go1.26.8"}, "v0.2.0 (revision 0123456789ab, go1.26.8)"},
		{Info{Version: "v0.1.0", Revision: "0123456789abcdef", Modified: true, GoVersion: "go1.26.8"}, "v0.1.0 (revision 0123456789ab, modified, go1.26.8)"},
		{Info{Version: Devel, GoVersion: "go1.26.8"}, "(devel) (revision unknown, go1.26.8)"},
	} {
		if got := tc.info.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.info, got, tc.want)
		}
	}
}

// TestLDFlags links a program with LDFlags, as the Makefile and the image builder do, and
// checks it reports what they set: a misspelled variable name would be ignored by the linker.
func TestLDFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("links a program")
	}
	bin := t.TempDir() + "/printversion"
	build := exec.Command("go", "build", "-ldflags", LDFlags("v9.8.7", "abcdef0123456789"), "-o", bin, "./testdata/printversion")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "v9.8.7 (revision abcdef012345, " + runtime.Version() + ")"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("the linked program reports %q, want %q", got, want)
	}
}
