package collect

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	upload "code.cloudfoundry.org/quarks-job/api/upload/protocol"
)

func TestParseDeclared(t *testing.T) {
	d, err := ParseDeclared(`{"gen":["b.json","a.json"],"other":["x"]}`)
	if err != nil || len(d) != 2 || d.Containers()[0] != "gen" {
		t.Fatalf("got %v, %v", d, err)
	}
	if d, err := ParseDeclared(""); err != nil || len(d) != 0 {
		t.Fatalf("empty: %v, %v", d, err)
	}
	for _, bad := range []string{`[`, `{"c":["../token"]}`, `{"c":["a/b"]}`, `{"..":["a"]}`, `{"c":[""]}`} {
		if _, err := ParseDeclared(bad); err == nil || !strings.Contains(err.Error(), upload.EnvOutputFiles) {
			t.Errorf("ParseDeclared(%s): want an error naming %s, got %v", bad, upload.EnvOutputFiles, err)
		}
	}
}

func TestCollect(t *testing.T) {
	root := t.TempDir()
	write := func(container, name, content string) {
		t.Helper()
		dir := filepath.Join(root, container)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gen", "ok.json", `{"a":"b"}`)
	write("gen", "bad.json", `{"a":1}`) // read as is: the controller judges it
	write("gen", "big.json", strings.Repeat("x", upload.MaxFileBytes+1))
	secret := filepath.Join(root, "token")
	if err := os.WriteFile(secret, []byte("secret token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "gen", "link.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "gen", "fifo.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "gen", "dir.json"), 0o755); err != nil {
		t.Fatal(err)
	}

	declared := Declared{
		"gen":    {"ok.json", "bad.json", "big.json", "link.json", "fifo.json", "dir.json", "never.json"},
		"silent": {"out.json"}, // a container whose directory does not even exist
	}
	done := make(chan *upload.Request)
	go func() { done <- Collect(root, declared) }()
	var req *upload.Request
	select {
	case req = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Collect hung (a FIFO must not block it)")
	}

	if len(req.Containers) != 2 || req.Containers[0].Name != "gen" || req.Containers[1].Name != "silent" {
		t.Fatalf("containers: %+v", req.Containers)
	}
	files := map[string]upload.File{}
	for _, f := range req.Containers[0].Files {
		files[f.Name] = f
	}
	if string(files["ok.json"].Content) != `{"a":"b"}` || files["ok.json"].Error != "" {
		t.Errorf("ok.json: %+v", files["ok.json"])
	}
	if string(files["bad.json"].Content) != `{"a":1}` {
		t.Errorf("bad.json must be uploaded for the controller to judge: %+v", files["bad.json"])
	}
	expectError := map[string]string{
		"big.json":  "is 1048577 bytes or more; an output file may hold at most 1048576 bytes",
		"link.json": "is a symbolic link",
		"fifo.json": "is a named pipe; output files must be regular files",
		"dir.json":  "is a directory; output files must be regular files",
	}
	for name, want := range expectError {
		f := files[name]
		if !strings.Contains(f.Error, want) || len(f.Content) != 0 {
			t.Errorf("%s: error %q does not contain %q (content %d bytes)", name, f.Error, want, len(f.Content))
		}
	}
	if m := req.Containers[0].Missing; len(m) != 1 || m[0] != "never.json" {
		t.Errorf("gen missing: %v", m)
	}
	if m := req.Containers[1].Missing; len(m) != 1 || m[0] != "out.json" {
		t.Errorf("silent missing: %v", m)
	}
}
