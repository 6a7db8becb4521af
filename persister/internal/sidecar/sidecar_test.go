package sidecar

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	upload "code.cloudfoundry.org/quarks-job/api/upload/protocol"
	"code.cloudfoundry.org/quarks-job/persister/internal/collect"
	"code.cloudfoundry.org/quarks-job/persister/internal/testlog"
	"code.cloudfoundry.org/quarks-job/persister/internal/uploader"
)

func setup(t *testing.T, handler http.HandlerFunc) (Config, *testlog.Buffer, func()) {
	t.Helper()
	root := t.TempDir()
	for _, c := range []string{"gen", "quiet"} {
		if err := os.Mkdir(filepath.Join(root, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewTLSServer(handler)
	httpClient, err := uploader.NewHTTPClient(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	if err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(root, "token")
	if err := os.WriteFile(token, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	return Config{
		Root:     root,
		Declared: collect.Declared{"gen": {"creds.json"}, "quiet": {"never.json"}},
		Uploader: &uploader.Client{Endpoint: srv.URL + upload.Path, TokenPath: token, HTTP: httpClient, Log: log,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		UploadTimeout: 2 * time.Second,
		Log:           log,
	}, logs, srv.Close
}

func TestRunUploadsAtTermination(t *testing.T) {
	received := make(chan upload.Request, 1)
	cfg, logs, stop := setup(t, func(w http.ResponseWriter, r *http.Request) {
		var req upload.Request
		_ = json.NewDecoder(r.Body).Decode(&req)
		received <- req
		_ = json.NewEncoder(w).Encode(upload.Response{Secrets: []string{"creds"}})
	})
	defer stop()

	terminate := make(chan struct{})
	code := make(chan int)
	go func() { code <- Run(terminate, cfg) }()
	// The container writes while the persister runs.
	if err := os.WriteFile(filepath.Join(cfg.Root, "gen", "creds.json"), []byte(`{"user":"u"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	close(terminate)

	select {
	case c := <-code:
		if c != ExitUploaded {
			t.Fatalf("exit code %d; logs:\n%s", c, logs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	req := <-received
	if len(req.Containers) != 2 || string(req.Containers[0].Files[0].Content) != `{"user":"u"}` {
		t.Fatalf("upload: %+v", req)
	}
	if m := req.Containers[1].Missing; len(m) != 1 || m[0] != "never.json" {
		t.Fatalf("a container that wrote nothing must be reported missing, not waited for: %+v", req.Containers[1])
	}
	if !strings.Contains(logs.String(), `output file \"never.json\" of container \"quiet\" was not written`) {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestRunGivesUpWithinTheTimeout(t *testing.T) {
	cfg, logs, stop := setup(t, func(http.ResponseWriter, *http.Request) {})
	stop() // the controller is unreachable
	cfg.UploadTimeout = 300 * time.Millisecond
	terminate := make(chan struct{})
	close(terminate)
	start := time.Now()
	if code := Run(terminate, cfg); code != ExitNotSaved {
		t.Fatalf("exit code %d", code)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("took %s with a timeout of %s", elapsed, cfg.UploadTimeout)
	}
	if !strings.Contains(logs.String(), "output NOT persisted: the upload was not acknowledged in time") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestRunMisconfiguredStillWaitsAndExits(t *testing.T) {
	logs := &testlog.Buffer{}
	cfg := Config{Root: t.TempDir(), ConfigError: errors.New("QUARKS_JOB_OUTPUT_URL is not set"), Log: slog.New(slog.NewTextHandler(logs, nil))}
	terminate := make(chan struct{})
	code := make(chan int)
	go func() { code <- Run(terminate, cfg) }()
	select {
	case <-code:
		t.Fatal("a misconfigured persister must not exit before termination (a restarting sidecar holds the pod)")
	case <-time.After(100 * time.Millisecond):
	}
	close(terminate)
	if c := <-code; c != ExitNotSaved {
		t.Fatalf("exit code %d", c)
	}
	if !strings.Contains(logs.String(), "QUARKS_JOB_OUTPUT_URL is not set") {
		t.Errorf("logs:\n%s", logs)
	}
}
