// Command images builds the project's container images without a container
// engine and pushes them to the local cluster's registry.
//
//	images build --out bin/images [--push 127.0.0.1:5050] [--busybox TAG] [--version V] [--revision R] [--source URL] TAG=GO_MAIN_PACKAGE_DIR...
//	images push --registry 127.0.0.1:5050 FILE.tar...
//	images dir --out FILE.tar [--entrypoint WORD]... DIR TAG...
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"code.cloudfoundry.org/quarks-job/api/version"
	"code.cloudfoundry.org/quarks-job/tools/internal/gitversion"
	"code.cloudfoundry.org/quarks-job/tools/internal/mirror"
	"code.cloudfoundry.org/quarks-job/tools/internal/ociimage"
)

func main() {
	root := &cobra.Command{Use: "images", Short: "Build OCI images from static binaries and push them to the local cluster's registry", SilenceUsage: true}
	root.AddCommand(buildCommand(), pushCommand(), dirCommand())
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}

func buildCommand() *cobra.Command {
	var out, push, busyboxTag, busyboxBinary string
	var build goBuild
	cmd := &cobra.Command{
		Use:   "build TAG=DIR...",
		Short: "Build one image per Go main package DIR (static binary on an empty base), tagged TAG, into --out",
		Long: `Each TAG=DIR builds the main package in DIR with CGO_ENABLED=0 and puts the
binary at /<base name of DIR> as the image's entrypoint, running as uid 65532.
A DIR without a main package yet is skipped with a message. --busybox also
builds a busybox image from Debian's busybox-static.

The binary reports --version and --revision (see the api module's version
package), and the image carries them as the OCI annotations
org.opencontainers.image.version, .revision and .source (config labels in
the tarball). Without --version, each image gets its module's version from
git describe of the module's tags (controller/v0.2.0 → v0.2.0), or none.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			var built []string
			for _, arg := range args {
				tag, dir, ok := strings.Cut(arg, "=")
				if !ok {
					return fmt.Errorf("%q: want TAG=DIR", arg)
				}
				if !hasMainPackage(dir) {
					cmd.PrintErrf("skipping %s: no main package in %s yet\n", tag, dir)
					continue
				}
				file, err := buildGoImage(tag, dir, out, build)
				if err != nil {
					return fmt.Errorf("image %s: %w", tag, err)
				}
				built = append(built, file)
			}
			if busyboxTag != "" {
				file, err := buildBusybox(busyboxTag, busyboxBinary, out)
				if err != nil {
					return fmt.Errorf("busybox image: %w", err)
				}
				built = append(built, file)
			}
			for _, f := range built {
				if _, err := fmt.Fprintf(cmd.OutOrStdout(), "built %s\n", f); err != nil {
					return err
				}
			}
			if push != "" {
				return pushAll(cmd, push, built)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "images", "folder for the image tarballs")
	cmd.Flags().StringVar(&push, "push", "", "also push the images to the registry at this address")
	cmd.Flags().StringVar(&busyboxTag, "busybox", "", "also build a busybox image with this tag (e.g. docker.io/library/busybox:latest)")
	cmd.Flags().StringVar(&busyboxBinary, "busybox-binary", "/bin/busybox", "static busybox binary (Debian package busybox-static)")
	cmd.Flags().StringVar(&build.version, "version", "", "version of every Go image and its binary (v0.2.0); default: each module's from git describe")
	cmd.Flags().StringVar(&build.revision, "revision", "", "git commit of every Go image and its binary; default: the checkout's")
	cmd.Flags().StringVar(&build.source, "source", "", "URL of the source repository, for the images' annotations")
	return cmd
}

func pushCommand() *cobra.Command {
	var registry string
	cmd := &cobra.Command{
		Use:   "push FILE.tar...",
		Short: "Push image tarballs to the local cluster's registry",
		RunE: func(cmd *cobra.Command, args []string) error {
			return pushAll(cmd, registry, args)
		},
	}
	cmd.Flags().StringVar(&registry, "registry", "127.0.0.1:5050", "address of the local cluster's registry")
	return cmd
}

func dirCommand() *cobra.Command {
	var out string
	var entrypoint []string
	cmd := &cobra.Command{
		Use:   "dir --out FILE.tar DIR TAG...",
		Short: "Build an image whose only layer is the tree under DIR (files, directories, symlinks) into one tarball under every TAG",
		Long: `The tree under DIR becomes the image's root, owned by root; the image runs
as root with --entrypoint. The kind node image uses it for the control-plane
images: the Kubernetes multi-call binary with a symlink per component is one
image tagged kube-apiserver, kube-controller-manager, kube-scheduler and
kube-proxy, stored once.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := ociimage.Dir(args[0], entrypoint)
			if err != nil {
				return err
			}
			img, err := ociimage.Build(spec)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			if err := ociimage.Write(out, img, args[1:]...); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "built %s: %s\n", out, strings.Join(args[1:], " "))
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "image.tar", "the image tarball to write")
	cmd.Flags().StringArrayVar(&entrypoint, "entrypoint", nil, "the image's entrypoint, one flag per word")
	return cmd
}

func pushAll(cmd *cobra.Command, registry string, files []string) error {
	for _, f := range files {
		refs, err := mirror.Push(registry, f)
		if err != nil {
			return fmt.Errorf("push %s (is the local cluster up?): %w", f, err)
		}
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "pushed %s to %s\n", strings.Join(refs, ", "), registry); err != nil {
			return err
		}
	}
	return nil
}

func hasMainPackage(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(raw), "package main") {
			return true
		}
	}
	return false
}

// tarballName is the image's file in the output folder: the last element of
// its repository (pause.tar, busybox.tar, quarks-job.tar).
func tarballName(tag, out string) (string, error) {
	ref, err := name.NewTag(tag)
	if err != nil {
		return "", err
	}
	return filepath.Join(out, filepath.Base(ref.RepositoryStr())+".tar"), nil
}

// goBuild is what the images tool's flags say every Go image is.
type goBuild struct{ version, revision, source string }

// provenance completes b for the main package in dir from git where a flag left it out.
func (b goBuild) provenance(dir string) (ociimage.Provenance, error) {
	p := ociimage.Provenance{Version: b.version, Revision: b.revision, Source: b.source}
	var err error
	if p.Version == "" {
		if p.Version, err = gitversion.ModuleVersion(dir); err != nil {
			return p, err
		}
	}
	if p.Revision == "" {
		if p.Revision, err = gitversion.Revision(dir); err != nil {
			return p, err
		}
	}
	return p, nil
}

func buildGoImage(tag, dir, out string, build goBuild) (string, error) {
	file, err := tarballName(tag, out)
	if err != nil {
		return "", err
	}
	provenance, err := build.provenance(dir)
	if err != nil {
		// A build outside a git checkout (a source archive) is still a build.
		fmt.Fprintf(os.Stderr, "image %s: no version or revision from git: %v\n", tag, err)
	}
	binary := file + ".bin"
	if err := ociimage.CompileGo(dir, binary, ociimage.GoBuild{LDFlags: version.LDFlags(provenance.Version, provenance.Revision)}); err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(binary) }() // a leftover is overwritten by the next build
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	spec, err := ociimage.Binary(binary, "/"+filepath.Base(abs))
	if err != nil {
		return "", err
	}
	spec.Annotations = provenance.Annotations()
	img, err := ociimage.Build(spec)
	if err != nil {
		return "", err
	}
	return file, ociimage.Write(file, img, tag)
}

func buildBusybox(tag, binary, out string) (string, error) {
	file, err := tarballName(tag, out)
	if err != nil {
		return "", err
	}
	list, err := exec.Command(binary, "--list-full").Output()
	if err != nil {
		return "", fmt.Errorf("%s --list-full (install Debian's busybox-static): %w", binary, err)
	}
	spec, err := ociimage.Busybox(binary, strings.Fields(string(list)))
	if err != nil {
		return "", err
	}
	img, err := ociimage.Build(spec)
	if err != nil {
		return "", err
	}
	return file, ociimage.Write(file, img, tag)
}
