// Package gitversion reads what a build should say about itself from git: the commit a checkout
// is at, whether it has uncommitted changes, and a module's version from its tags. Module tags
// follow Go's convention for modules in subdirectories: controller/v0.2.0 is version v0.2.0 of
// the module in controller/.
package gitversion

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Revision is the commit the checkout holding dir is at.
func Revision(dir string) (string, error) {
	return git(dir, "rev-parse", "HEAD")
}

// Dirty says whether the checkout holding dir has changes git would commit or untracked files
// it does not ignore: a build of it is not a build of its commit.
func Dirty(dir string) (bool, error) {
	status, err := git(dir, "status", "--porcelain")
	return status != "", err
}

// ModuleVersion is the version git describe gives the Go module holding dir, from the module's
// tags: v0.2.0 at the commit tagged controller/v0.2.0, v0.2.0-3-g0123456789ab three commits
// later; empty when the module has no tag yet.
func ModuleVersion(dir string) (string, error) {
	root, err := moduleRoot(dir)
	if err != nil {
		return "", err
	}
	prefix, err := git(root, "rev-parse", "--show-prefix") // "controller/"
	if err != nil {
		return "", err
	}
	pattern := prefix + "v[0-9]*"
	// git describe fails when no tag matches: ask first, so that its errors are real ones.
	tags, err := git(root, "tag", "--list", "--merged", "HEAD", pattern)
	if err != nil || tags == "" {
		return "", err
	}
	described, err := git(root, "describe", "--tags", "--abbrev=12", "--match", pattern)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(described, prefix), nil
}

// moduleRoot is the nearest directory at or above dir holding a go.mod.
func moduleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod at or above %s", dir)
		}
	}
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(string(exit.Stderr)))
		}
		return "", fmt.Errorf("git %s in %s: %w", strings.Join(args, " "), dir, err)
	}
	return strings.TrimSpace(string(out)), nil
}
