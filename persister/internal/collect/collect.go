// Package collect reads a pod's declared output files into an upload.
//
// Files are read defensively: the output directories belong to the job's
// containers, which may put anything there. Symbolic links (which could point
// at the persister's token) and non-regular files (a FIFO would block a read
// forever) are refused, and nothing larger than an output file may be is read.
package collect

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	upload "code.cloudfoundry.org/quarks-job/api/upload/protocol"
)

// Declared maps container names to the file names each declares.
type Declared map[string][]string

// ParseDeclared reads the JSON of upload.EnvOutputFiles.
func ParseDeclared(raw string) (Declared, error) {
	declared := Declared{}
	if strings.TrimSpace(raw) == "" {
		return declared, nil
	}
	if err := json.Unmarshal([]byte(raw), &declared); err != nil {
		return nil, fmt.Errorf("%s is not a JSON object of container → file names: %w", upload.EnvOutputFiles, err)
	}
	for container, files := range declared {
		if err := checkName(container); err != nil {
			return nil, fmt.Errorf("%s: container %q: %w", upload.EnvOutputFiles, container, err)
		}
		for _, f := range files {
			if err := checkName(f); err != nil {
				return nil, fmt.Errorf("%s: file %q of container %q: %w", upload.EnvOutputFiles, f, container, err)
			}
		}
	}
	return declared, nil
}

// checkName refuses names that are not one path element.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return errors.New("must be a single file name")
	}
	return nil
}

// Containers returns the declared container names, sorted.
func (d Declared) Containers() []string {
	names := make([]string, 0, len(d))
	for c := range d {
		names = append(names, c)
	}
	sort.Strings(names)
	return names
}

// String lists the declared files: "container: file, file; container: file".
func (d Declared) String() string {
	parts := make([]string, 0, len(d))
	for _, c := range d.Containers() {
		parts = append(parts, c+": "+strings.Join(d[c], ", "))
	}
	return strings.Join(parts, "; ")
}

// Path is where the persister sees a container's output file.
func Path(root, container, file string) string {
	return filepath.Join(root, container, file)
}

// ErrMissing means the file does not exist.
var ErrMissing = errors.New("was not written")

// Read reads one output file. Errors name the problem and the size; wrap
// them with the container and file.
func Read(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0) //nolint:gosec // G304: reading the declared output files is the persister's job
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, ErrMissing
	case errors.Is(err, syscall.ELOOP):
		return nil, errors.New("is a symbolic link; output files must be regular files")
	case err != nil:
		return nil, fmt.Errorf("cannot be opened: %w", err)
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("is %s; output files must be regular files", fileType(info.Mode()))
	}
	if info.Size() > upload.MaxFileBytes {
		return nil, tooLarge(info.Size())
	}
	content, err := io.ReadAll(io.LimitReader(f, upload.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %w", err)
	}
	if len(content) > upload.MaxFileBytes { // grew while being read
		return nil, tooLarge(int64(len(content)))
	}
	return content, nil
}

// fileType names what a file that is not a regular file is.
func fileType(mode fs.FileMode) string {
	switch {
	case mode.IsDir():
		return "a directory"
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeDevice != 0:
		return "a device"
	default:
		return fmt.Sprintf("not a regular file (%s)", mode.Type())
	}
}

func tooLarge(size int64) error {
	return fmt.Errorf("is %d bytes or more; an output file may hold at most %d bytes (1 MiB, what one Secret holds)", size, upload.MaxFileBytes)
}

// Collect reads every declared file under root into an upload. A file that
// does not exist is listed as missing; one that cannot be read carries the
// reason, so the controller reports it.
func Collect(root string, declared Declared) *upload.Request {
	req := &upload.Request{Containers: []upload.Container{}}
	total := 0
	for _, container := range declared.Containers() {
		c := upload.Container{Name: container}
		files := append([]string(nil), declared[container]...)
		sort.Strings(files)
		for _, name := range files {
			content, err := Read(Path(root, container, name))
			switch {
			case errors.Is(err, ErrMissing):
				c.Missing = append(c.Missing, name)
			case err != nil:
				c.Files = append(c.Files, upload.File{Name: name, Error: err.Error()})
			case total+len(content) > upload.MaxRequestBytes:
				c.Files = append(c.Files, upload.File{Name: name, Error: fmt.Sprintf(
					"was not uploaded: with it the pod's output would exceed %d bytes in all", upload.MaxRequestBytes)})
			default:
				total += len(content)
				c.Files = append(c.Files, upload.File{Name: name, Content: content})
			}
		}
		req.Containers = append(req.Containers, c)
	}
	return req
}
