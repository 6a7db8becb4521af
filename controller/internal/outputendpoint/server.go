// Package outputendpoint is the controller's HTTPS output endpoint. The
// persister sidecar of a run's pod uploads the pod's output files to it; the
// endpoint authenticates the pod by its bound service-account token, checks
// the pod's Job against the run recorded in the QuarksJob's status, checks the
// files against the output spec snapshotted in that record, writes the
// Secrets, and records the outcome in the record for the QuarksJob
// reconciler. See docs/security.md.
package outputendpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/secretwriter"
)

// Options configure the endpoint.
type Options struct {
	// BindAddress is where the endpoint listens; default ":8443".
	BindAddress string
	// CertDir holds the serving certificate, reloaded when it changes.
	CertDir string
	// CertName and KeyName are the file names in CertDir; default tls.crt and tls.key.
	CertName, KeyName string
	// ExitCodeTimeout bounds how long an upload waits for the kubelet to
	// report the exit codes of the pod's declaring containers; default 10s.
	ExitCodeTimeout time.Duration
	// Recorder emits Events on the QuarksJob; default the manager's recorder
	// named "quarks-job-output".
	Recorder events.EventRecorder
	// Watches, when set, says whether the operator runs a namespace's
	// QuarksJobs; uploads from pods in other namespaces are refused.
	Watches func(ctx context.Context, namespace string) (bool, error)
	// PersisterImage, when set, is the only image a run pod's persister may
	// run (the image the webhook injects).
	PersisterImage string
	// Limits bound concurrent uploads and TokenReviews.
	Limits Limits
	// HoldNamespace is the controller's own namespace: an upload whose exit
	// codes the kubelet has not reported within ExitCodeTimeout is held
	// there in a Secret and persisted when they are. Empty: nothing is held,
	// and the persister retries until its grace period ends.
	HoldNamespace string
	// HoldInterval is how often the leader looks at the held uploads;
	// default DefaultHoldInterval.
	HoldInterval time.Duration
}

// Defaults.
const (
	DefaultBindAddress     = ":8443"
	DefaultExitCodeTimeout = 10 * time.Second
	// processingTimeout bounds one upload's work after the exit-code wait. The
	// work is detached from the request, so an upload whose client gave up
	// still records its Result.
	processingTimeout = 60 * time.Second
)

func (o *Options) defaults(mgr manager.Manager) {
	if o.BindAddress == "" {
		o.BindAddress = DefaultBindAddress
	}
	if o.CertName == "" {
		o.CertName = "tls.crt"
	}
	if o.KeyName == "" {
		o.KeyName = "tls.key"
	}
	if o.ExitCodeTimeout <= 0 {
		o.ExitCodeTimeout = DefaultExitCodeTimeout
	}
	if o.HoldInterval <= 0 {
		o.HoldInterval = DefaultHoldInterval
	}
	if o.Recorder == nil {
		o.Recorder = mgr.GetEventRecorder("quarks-job-output")
	}
}

// Add registers the endpoint with the manager. It serves on every replica,
// leader or not: writes are safe across replicas (see package versionedsecret).
func Add(mgr ctrl.Manager, opts Options) error {
	if opts.CertDir == "" {
		return errors.New("output endpoint: a certificate directory is required")
	}
	opts.defaults(mgr)
	watcher, err := certwatcher.New(filepath.Join(opts.CertDir, opts.CertName), filepath.Join(opts.CertDir, opts.KeyName))
	if err != nil {
		return fmt.Errorf("output endpoint: loading the serving certificate from %s: %w", opts.CertDir, err)
	}
	h := &handler{
		client:          mgr.GetClient(),
		reader:          mgr.GetAPIReader(),
		recorder:        opts.Recorder,
		writer:          &secretwriter.Writer{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()},
		exitCodeTimeout: opts.ExitCodeTimeout,
		log:             mgr.GetLogger().WithName("output-endpoint"),
		watches:         opts.Watches,
		persisterImage:  opts.PersisterImage,
		limits:          newLimits(opts.Limits),
		holdNamespace:   opts.HoldNamespace,
	}
	if h.issuer, err = newIssuer(mgr.GetConfig(), mgr.GetHTTPClient(), h.log); err != nil {
		return fmt.Errorf("output endpoint: %w", err)
	}
	if h.holdNamespace != "" {
		if err := mgr.Add(&holder{h: h, interval: opts.HoldInterval}); err != nil {
			return err
		}
	}
	return mgr.Add(&server{addr: opts.BindAddress, certs: watcher, handler: h})
}

// server is the manager Runnable serving the endpoint over HTTPS.
type server struct {
	addr    string
	certs   *certwatcher.CertWatcher
	handler http.Handler
}

// NeedLeaderElection is false: every replica serves uploads.
func (s *server) NeedLeaderElection() bool { return false }

// Start serves until ctx is done.
func (s *server) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("output-endpoint")
	go func() {
		if err := s.certs.Start(ctx); err != nil {
			log.Error(err, "certificate watcher stopped")
		}
	}()

	mux := http.NewServeMux()
	mux.Handle(upload.Path, s.handler)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      2 * processingTimeout,
		IdleTimeout:       90 * time.Second,
		// TLS handshake errors (probes, port scans) are debug noise.
		ErrorLog: stdlog.New(logWriter{log.V(1)}, "", 0),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.certs.GetCertificate,
		},
	}
	listener, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("output endpoint: listening on %s: %w", s.addr, err)
	}
	log.Info("serving output uploads", "address", listener.Addr().String(), "path", upload.Path)

	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(listener, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("output endpoint: %w", err)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			return fmt.Errorf("output endpoint: shutting down: %w", err)
		}
		return nil
	}
}

var _ manager.LeaderElectionRunnable = &server{}

// logWriter sends the HTTP server's own log lines to a logr.Logger.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}
