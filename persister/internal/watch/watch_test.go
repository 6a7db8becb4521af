package watch

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"code.cloudfoundry.org/quarks-job/persister/internal/collect"
	"code.cloudfoundry.org/quarks-job/persister/internal/testlog"
)

func TestWatcherLogsProblemsAsFilesAppear(t *testing.T) {
	root := t.TempDir()
	for _, c := range []string{"gen", "other"} {
		if err := os.Mkdir(filepath.Join(root, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Written before the watch starts: found by the initial scan.
	if err := os.WriteFile(filepath.Join(root, "other", "early.json"), []byte(`{"a":true}`), 0o644); err != nil {
		t.Fatal(err)
	}

	var logs testlog.Buffer
	checked := make(chan string, 100)
	w := &Watcher{
		Root:     root,
		Declared: collect.Declared{"gen": {"creds.json"}, "other": {"early.json"}},
		Log:      slog.New(slog.NewTextHandler(&logs, nil)),
		Settle:   20 * time.Millisecond,
		Checked:  func(path string, _ error) { checked <- filepath.Base(path) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { w.Run(ctx); close(stopped) }()
	waitFor(t, checked, "early.json")
	if !strings.Contains(logs.String(), `output file \"early.json\" of container \"other\": value of key \"a\" is a boolean`) {
		t.Errorf("early invalid file not reported:\n%s", logs.String())
	}

	path := filepath.Join(root, "gen", "creds.json")
	if err := os.WriteFile(path, []byte(`{"user":{"name":"x"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, checked, "creds.json")
	if !strings.Contains(logs.String(), `value of key \"user\" is a nested object`) {
		t.Errorf("nested object not reported:\n%s", logs.String())
	}

	if err := os.WriteFile(path, []byte(`{"user":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, checked, "creds.json")
	if !strings.Contains(logs.String(), `output file \"creds.json\" of container \"gen\" is valid`) {
		t.Errorf("valid file not reported:\n%s", logs.String())
	}

	if err := os.WriteFile(filepath.Join(root, "gen", "stray.json"), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `file \"stray.json\" in the output directory of container \"gen\" is not declared`) {
		if time.Now().After(deadline) {
			t.Fatalf("undeclared file not reported:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not stop")
	}
}

func TestWatcherMissingDirectoryDoesNotBlock(t *testing.T) {
	var logs testlog.Buffer
	w := &Watcher{Root: t.TempDir(), Declared: collect.Declared{"ghost": {"a.json"}}, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { w.Run(ctx); close(stopped) }()
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not stop")
	}
	if !strings.Contains(logs.String(), `cannot watch the output directory of container \"ghost\"`) {
		t.Errorf("missing directory not reported:\n%s", logs.String())
	}
}

func waitFor(t *testing.T, checked <-chan string, name string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-checked:
			if got == name {
				return
			}
		case <-timeout:
			t.Fatalf("%s was not validated", name)
		}
	}
}
