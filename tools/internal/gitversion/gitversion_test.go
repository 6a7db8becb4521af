package gitversion

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestModuleVersion tags modules in subdirectories of a fresh repository, as releases do.
func TestModuleVersion(t *testing.T) {
	repo := t.TempDir()
	for _, f := range []string{"controller/go.mod", "controller/cmd/quarks-job/main.go", "persister/go.mod"} {
		write(t, filepath.Join(repo, f), "x")
	}
	run(t, repo, "init", "-q")
	run(t, repo, "add", "-A")
	run(t, repo, "commit", "-q", "-m", "first")
	main := filepath.Join(repo, "controller/cmd/quarks-job")

	if v, err := ModuleVersion(main); err != nil || v != "" {
		t.Errorf("untagged: %q, %v; want no version", v, err)
	}
	run(t, repo, "tag", "-a", "-m", "v0.1.0", "controller/v0.1.0")
	run(t, repo, "tag", "-a", "-m", "v0.9.0", "persister/v0.9.0") // another module's tag
	if v, err := ModuleVersion(main); err != nil || v != "v0.1.0" {
		t.Errorf("at the tag: %q, %v; want v0.1.0", v, err)
	}
	if v, err := ModuleVersion(filepath.Join(repo, "persister")); err != nil || v != "v0.9.0" {
		t.Errorf("persister at its tag: %q, %v; want v0.9.0", v, err)
	}

	write(t, filepath.Join(repo, "controller/cmd/quarks-job/main.go"), "y")
	if dirty, err := Dirty(repo); err != nil || !dirty {
		t.Errorf("Dirty with a changed file: %v, %v", dirty, err)
	}
	run(t, repo, "commit", "-q", "-am", "second")
	if dirty, err := Dirty(repo); err != nil || dirty {
		t.Errorf("Dirty after the commit: %v, %v", dirty, err)
	}
	v, err := ModuleVersion(main)
	if err != nil || !regexp.MustCompile(`^v0\.1\.0-1-g[0-9a-f]{12}$`).MatchString(v) {
		t.Errorf("one commit after the tag: %q, %v; want v0.1.0-1-g<commit>", v, err)
	}
	rev, err := Revision(main)
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(rev) || v[len(v)-12:] != rev[:12] {
		t.Errorf("revision %q (%v) does not match the described version %q", rev, err, v)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.org",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.org", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}
