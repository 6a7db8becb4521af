package ociimage

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CompileGo builds the Go main package in dir as a static Linux binary at binary, linked with
// ldflags besides -s -w (no symbol table and no debug information: smaller images). -trimpath
// keeps the build machine's paths out of the binary, so the same commit builds the same image
// anywhere. env (NAME=value) is added to the go command's environment.
func CompileGo(dir, binary, ldflags string, env ...string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", strings.TrimSpace("-s -w "+ldflags), "-o", binary, ".")
	build.Dir = abs
	build.Env = append(append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux"), env...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build in %s: %w", dir, err)
	}
	return nil
}
