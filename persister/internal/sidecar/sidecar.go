// Package sidecar is the persister's life: validate output files while the
// job's containers run, and when they have exited (the kubelet sends SIGTERM
// to a native sidecar then) upload them once, within the grace period.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	upload "code.cloudfoundry.org/quarks-job/api/upload/protocol"
	"code.cloudfoundry.org/quarks-job/persister/internal/collect"
	"code.cloudfoundry.org/quarks-job/persister/internal/uploader"
	"code.cloudfoundry.org/quarks-job/persister/internal/watch"
)

// Config is what the persister runs with.
type Config struct {
	// Root holds one output directory per declaring container.
	Root     string
	Declared collect.Declared
	// Uploader is nil when the configuration is broken (ConfigError says why).
	Uploader    *uploader.Client
	ConfigError error
	// UploadTimeout is how long after termination the upload may take.
	UploadTimeout time.Duration
	Log           *slog.Logger
	// Version is the persister's release version, logged at start.
	Version string
}

// Exit codes. A native sidecar's exit code does not decide the pod's phase;
// it tells `kubectl get pod` what happened.
const (
	ExitUploaded = 0
	ExitNotSaved = 1
)

// Run validates files until terminate is closed, then uploads and returns the
// exit code. It never waits for files: what is not there at termination is
// reported missing. A broken configuration is logged at once, and the
// persister still waits for termination, so the pod's containers run and the
// pod finishes (a crashing sidecar would hold the pod in restarts).
func Run(terminate <-chan struct{}, cfg Config) int {
	log := cfg.Log
	log.Info("persister started", "version", cfg.Version, "uploadProtocol", upload.Version)
	if cfg.ConfigError != nil {
		log.Error("the persister is misconfigured; output will NOT be persisted", "error", cfg.ConfigError.Error())
	}

	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		(&watch.Watcher{Root: cfg.Root, Declared: cfg.Declared, Log: log}).Run(watchCtx)
	}()

	<-terminate
	started := time.Now()
	stopWatch()
	<-watched
	if cfg.Uploader == nil {
		log.Error("containers exited; output NOT persisted: the persister is misconfigured", "error", fmt.Sprint(cfg.ConfigError))
		return ExitNotSaved
	}

	req := collect.Collect(cfg.Root, cfg.Declared)
	for _, c := range req.Containers {
		for _, name := range c.Missing {
			log.Warn(fmt.Sprintf("output file %q of container %q was not written", name, c.Name))
		}
		for _, f := range c.Files {
			if f.Error != "" {
				log.Error(upload.FileProblem(c.Name, f.Name, errors.New(f.Error)))
				continue
			}
			// The watcher may not have judged the file as it is now (it
			// changed until the end): the last word is said here, before
			// the controller says the same.
			if _, err := upload.ParseOutput(f.Content); err != nil {
				log.Error(upload.FileProblem(c.Name, f.Name, err),
					"hint", "it is uploaded as it is; the controller will not persist it")
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.UploadTimeout)
	defer cancel()
	log.Info("containers exited; uploading output", "endpoint", cfg.Uploader.Endpoint, "timeout", cfg.UploadTimeout.String())
	resp, err := cfg.Uploader.Send(ctx, req)
	if err != nil {
		var permanent *uploader.PermanentError
		if errors.As(err, &permanent) {
			log.Error("output NOT persisted: the controller refused the upload", "error", err.Error())
		} else {
			log.Error("output NOT persisted: the upload was not acknowledged in time", "error", err.Error(), "after", time.Since(started).Round(time.Millisecond).String())
		}
		return ExitNotSaved
	}
	for _, p := range resp.Problems {
		log.Error("the controller reported a problem with the output", "problem", p)
	}
	log.Info("upload acknowledged", "secrets", resp.Secrets, "problems", len(resp.Problems), "took", time.Since(started).Round(time.Millisecond).String())
	return ExitUploaded
}
