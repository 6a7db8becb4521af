// Package ociimage builds OCI images without a container engine: a static
// binary (or Debian's static busybox) in one layer on an empty base.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one entry of an image's only layer.
type File struct {
	Path    string // absolute path in the image
	Mode    int64
	Content []byte
	Link    string // for a symlink: its target
	Dir     bool
	Owner   int // uid and gid
}

// Spec describes an image.
type Spec struct {
	Files      []File
	Entrypoint []string
	Cmd        []string
	User       string
	Env        []string
	// Annotations are written twice: as the config's labels (docker inspect, crane config) and
	// as the manifest's annotations (registries, crane manifest). A docker archive (Write) keeps
	// only the labels: its format has no manifest of its own.
	Annotations map[string]string
}

// Provenance is where an image comes from.
type Provenance struct {
	Version  string // v0.2.0
	Revision string // the git commit
	Source   string // URL of the source repository
}

// OCI annotation keys (github.com/opencontainers/image-spec, annotations.md).
const (
	AnnotationVersion  = "org.opencontainers.image.version"
	AnnotationRevision = "org.opencontainers.image.revision"
	AnnotationSource   = "org.opencontainers.image.source"
)

// Annotations are p as OCI annotations; empty fields are left out. There is no
// org.opencontainers.image.created: every image is dated 1970 (epoch), so that the same inputs
// give the same digest, and a build date would break that.
func (p Provenance) Annotations() map[string]string {
	out := map[string]string{}
	for key, value := range map[string]string{AnnotationVersion: p.Version, AnnotationRevision: p.Revision, AnnotationSource: p.Source} {
		if value != "" {
			out[key] = value
		}
	}
	return out
}

// epoch is every file's time: the same inputs give the same image digest.
var epoch = time.Unix(0, 0).UTC()

// Build assembles the image of spec.
func Build(spec Spec) (v1.Image, error) {
	layer, err := layer(spec.Files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	config, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	config = config.DeepCopy()
	config.OS, config.Architecture = "linux", runtime.GOARCH
	config.Created = v1.Time{Time: epoch}
	config.Config.Entrypoint = spec.Entrypoint
	config.Config.Cmd = spec.Cmd
	config.Config.User = spec.User
	config.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, spec.Env...)
	if len(spec.Annotations) > 0 {
		config.Config.Labels = maps.Clone(spec.Annotations)
	}
	if img, err = mutate.ConfigFile(img, config); err != nil {
		return nil, err
	}
	if len(spec.Annotations) == 0 {
		return img, nil
	}
	annotated, ok := mutate.Annotations(img, maps.Clone(spec.Annotations)).(v1.Image)
	if !ok {
		return nil, fmt.Errorf("annotating the image's manifest: not an image")
	}
	return annotated, nil
}

// Write writes img as an image tarball tagged with every tag.
func Write(file string, img v1.Image, tags ...string) error {
	refs := map[name.Reference]v1.Image{}
	for _, tag := range tags {
		ref, err := nameTag(tag)
		if err != nil {
			return err
		}
		refs[ref] = img
	}
	return tarball.MultiRefWriteToFile(file, refs)
}

func layer(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	dirs := map[string]bool{"/": true}
	for _, f := range files {
		for _, d := range parents(f.Path) {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch}); err != nil {
					return nil, err
				}
			}
		}
		hdr := &tar.Header{Name: f.Path[1:], Mode: f.Mode, ModTime: epoch, Uid: f.Owner, Gid: f.Owner}
		switch {
		case f.Dir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
			dirs[f.Path] = true
		case f.Link != "":
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Link
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.Content))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Content); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// parents returns the directories above p, outermost first.
func parents(p string) []string {
	var out []string
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// Binary is the spec of an image holding one static binary as its
// entrypoint, running as a non-root user.
func Binary(binaryPath, inImage string) (Spec, error) {
	content, err := os.ReadFile(binaryPath)
	if err != nil {
		return Spec{}, err
	}
	return Spec{
		Files: append(baseFiles(),
			File{Path: inImage, Mode: 0o755, Content: content}),
		Entrypoint: []string{inImage},
		User:       "65532:65532",
	}, nil
}

// Busybox is the spec of a busybox image from a static busybox binary, with
// a symlink for each applet (paths as `busybox --list-full` prints them),
// like the busybox image on Docker Hub.
func Busybox(binaryPath string, applets []string) (Spec, error) {
	content, err := os.ReadFile(binaryPath)
	if err != nil {
		return Spec{}, err
	}
	files := append(baseFiles(), File{Path: "/bin/busybox", Mode: 0o755, Content: content})
	seen := map[string]bool{"/bin/busybox": true}
	for _, a := range applets {
		p := path.Join("/", a)
		if !seen[p] {
			seen[p] = true
			files = append(files, File{Path: p, Mode: 0o777, Link: "/bin/busybox"})
		}
	}
	return Spec{Files: files, Cmd: []string{"sh"}}, nil
}

// baseFiles are what programs expect of any Linux root: users, a writable
// /tmp.
func baseFiles() []File {
	return []File{
		{Path: "/etc/passwd", Mode: 0o644, Content: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/false\n")},
		{Path: "/etc/group", Mode: 0o644, Content: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{Path: "/tmp", Mode: 0o1777, Dir: true},
		{Path: "/root", Mode: 0o700, Dir: true},
		{Path: "/home/nonroot", Mode: 0o755, Dir: true, Owner: 65532},
	}
}

func nameTag(tag string) (name.Tag, error) { return name.NewTag(tag) }

// Dir is the spec of an image holding the tree under dir (regular files,
// directories and symlinks, with their modes; owned by root), as the root
// of the image, with the given entrypoint, running as root.
func Dir(dir string, entrypoint []string) (Spec, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Spec{}, err
	}
	defer func() { _ = root.Close() }()
	var files []File
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := File{Path: "/" + p, Mode: int64(info.Mode().Perm())}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if f.Link, err = root.Readlink(p); err != nil {
				return err
			}
			f.Mode = 0o777
		case d.IsDir():
			f.Dir = true
		case d.Type().IsRegular():
			if f.Content, err = root.ReadFile(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: neither file, directory nor symlink", filepath.Join(dir, p))
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return Spec{}, err
	}
	return Spec{Files: files, Entrypoint: entrypoint}, nil
}
