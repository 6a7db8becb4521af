// Package mirror is the local cluster's image registry: containerd pulls
// every image from it instead of from the internet. It serves the images
// from a folder of image tarballs and whatever is pushed to it later.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Serve runs the registry on listen (a loopback address) until ctx ends.
// Its tags live in memory, so it loads every *.tar of imagesDir at start.
func Serve(ctx context.Context, listen, imagesDir string) error {
	listener, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: Handler(log.New(os.Stderr, "registry ", log.LstdFlags)), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	tarballs, _ := filepath.Glob(filepath.Join(imagesDir, "*.tar"))
	for _, t := range tarballs {
		refs, err := Push(listen, t)
		if err != nil {
			return fmt.Errorf("load %s: %w", t, err)
		}
		log.Printf("loaded %s: %v", t, refs)
	}
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return server.Shutdown(shutdown)
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// Handler is the registry: an OCI distribution API that keeps what is pushed to it in memory,
// images and other artifacts (Helm charts) alike.
func Handler(logger *log.Logger) http.Handler {
	return registry.New(registry.Logger(logger))
}

// Push pushes every tagged image of an image tarball to the registry at
// addr, under the same repository path without the registry host:
// docker.io/library/busybox:latest becomes <addr>/library/busybox:latest,
// which is where containerd, mirroring docker.io to addr, looks for it.
func Push(addr, tarPath string) ([]string, error) {
	manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tarPath) })
	if err != nil {
		return nil, err
	}
	var pushed []string
	for _, entry := range manifest {
		for _, tag := range entry.RepoTags {
			ref, err := name.NewTag(tag)
			if err != nil {
				return pushed, err
			}
			img, err := tarball.ImageFromPath(tarPath, &ref)
			if err != nil {
				return pushed, err
			}
			target, err := tagAt(addr, ref)
			if err != nil {
				return pushed, err
			}
			if err := remote.Write(target, img); err != nil {
				return pushed, fmt.Errorf("push %s to %s: %w", tag, target, err)
			}
			pushed = append(pushed, ref.String())
		}
	}
	return pushed, nil
}

// tagAt is where image ref lives in the registry at addr.
func tagAt(addr string, ref name.Tag) (name.Tag, error) {
	return name.NewTag(fmt.Sprintf("%s/%s:%s", addr, ref.RepositoryStr(), ref.TagStr()), name.Insecure)
}
