package ociimage

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GoBuild says how CompileGo builds.
type GoBuild struct {
	// LDFlags are linker flags besides -s -w (no symbol table and no debug information: smaller
	// images), e.g. the version's -X flags.
	LDFlags string
	// TrimPath keeps the build machine's paths out of the binary (go build -trimpath), so a
	// commit builds the same binary anywhere. Releases use it; development images do not, so
	// they share the build cache with tests and `go build`.
	TrimPath bool
	// Env is added to the go command's environment (NAME=value).
	Env []string
}

// CompileGo builds the Go main package in dir as a static Linux binary at binary.
func CompileGo(dir, binary string, b GoBuild) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	args := []string{"build", "-ldflags", strings.TrimSpace("-s -w " + b.LDFlags), "-o", binary}
	if b.TrimPath {
		args = append(args, "-trimpath")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Dir = abs
	build.Env = append(append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux"), b.Env...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build in %s: %w", dir, err)
	}
	return nil
}
