// Package watch validates output files as the job's containers write them,
// so `kubectl logs -c <persister>` explains a bad file while the run is still
// going, not only after it ended. It never decides what is uploaded: the
// upload reads the files again when the containers have exited.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	upload "code.cloudfoundry.org/quarks-job/api/upload/protocol"
	"code.cloudfoundry.org/quarks-job/persister/internal/collect"
)

// DefaultSettle is how long a file must stay unchanged before it is
// validated: files are often written in several writes.
const DefaultSettle = 300 * time.Millisecond

// Watcher validates declared output files when they change.
type Watcher struct {
	Root     string
	Declared collect.Declared
	Log      *slog.Logger
	Settle   time.Duration

	mu      sync.Mutex
	timers  map[string]*time.Timer
	verdict map[string]string // path → last logged verdict, to log each once
	warned  map[string]bool   // undeclared paths already reported
	// Checked, when set, is called after each validation (for tests).
	Checked func(path string, err error)
}

// Run watches until ctx is done. Problems of the watch itself are logged:
// the upload does not depend on it.
func (w *Watcher) Run(ctx context.Context) {
	if w.Settle <= 0 {
		w.Settle = DefaultSettle
	}
	w.timers, w.verdict, w.warned = map[string]*time.Timer{}, map[string]string{}, map[string]bool{}

	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		w.Log.Error("cannot watch the output directories; files are validated at upload only", "error", err)
		return
	}
	defer func() { _ = fsw.Close() }()
	for _, container := range w.Declared.Containers() {
		dir := filepath.Join(w.Root, container)
		if err := fsw.Add(dir); err != nil {
			w.Log.Error(fmt.Sprintf("cannot watch the output directory of container %q; its files are validated at upload only", container),
				"dir", dir, "error", err)
		}
	}
	w.scan() // files written before the watch started
	// From here on every change is seen: a file written now is validated
	// once it has settled.
	w.Log.Info("watching output files", "root", w.Root, "declared", w.Declared.String())

	for {
		select {
		case <-ctx.Done():
			w.stopTimers()
			return
		case ev, ok := <-fsw.Events:
			if !ok {
				return
			}
			w.handle(ev)
		case err, ok := <-fsw.Errors:
			if !ok {
				return
			}
			w.Log.Warn("watching output directories", "error", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.scan()
			}
		}
	}
}

func (w *Watcher) handle(ev fsnotify.Event) {
	container, file := filepath.Base(filepath.Dir(ev.Name)), filepath.Base(ev.Name)
	if !slices.Contains(w.Declared[container], file) {
		if ev.Has(fsnotify.Create) {
			w.warnUndeclared(container, file)
		}
		return
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.schedule(ev.Name, container, file) // a rename away may leave nothing
		return
	}
	if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) || ev.Has(fsnotify.Chmod) {
		w.schedule(ev.Name, container, file)
	}
}

// schedule validates the file once it has not changed for Settle.
func (w *Watcher) schedule(path, container, file string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.timers[path]; ok {
		t.Reset(w.Settle)
		return
	}
	w.timers[path] = time.AfterFunc(w.Settle, func() {
		w.mu.Lock()
		delete(w.timers, path)
		w.mu.Unlock()
		w.check(path, container, file)
	})
}

func (w *Watcher) scan() {
	for _, container := range w.Declared.Containers() {
		for _, file := range w.Declared[container] {
			path := collect.Path(w.Root, container, file)
			if _, err := collect.Read(path); !errors.Is(err, collect.ErrMissing) {
				w.check(path, container, file)
			}
		}
	}
}

// check validates a file and logs the verdict when it changed.
func (w *Watcher) check(path, container, file string) {
	content, err := collect.Read(path)
	if err == nil {
		var values map[string]string
		if values, err = upload.ParseOutput(content); err == nil {
			w.logOnce(path, fmt.Sprintf("valid %d %d", len(values), len(content)), func() {
				w.Log.Info(fmt.Sprintf("output file %q of container %q is valid", file, container), "keys", len(values), "bytes", len(content))
			})
		}
	}
	switch {
	case errors.Is(err, collect.ErrMissing):
		w.logOnce(path, "missing", func() {
			w.Log.Warn(fmt.Sprintf("output file %q of container %q was removed", file, container))
		})
	case err != nil:
		w.logOnce(path, err.Error(), func() {
			w.Log.Error(upload.FileProblem(container, file, err),
				"hint", "the file is uploaded as it is when the container exits; if it is still invalid then, it is not persisted")
		})
	}
	if w.Checked != nil {
		w.Checked(path, err)
	}
}

func (w *Watcher) logOnce(path, verdict string, log func()) {
	w.mu.Lock()
	changed := w.verdict[path] != verdict
	w.verdict[path] = verdict
	w.mu.Unlock()
	if changed {
		log()
	}
}

func (w *Watcher) warnUndeclared(container, file string) {
	path := filepath.Join(container, file)
	w.mu.Lock()
	seen := w.warned[path]
	w.warned[path] = true
	w.mu.Unlock()
	if !seen {
		w.Log.Warn(fmt.Sprintf("file %q in the output directory of container %q is not declared in output.outputMap; it will not be uploaded", file, container),
			"declared", w.Declared[container])
	}
}

func (w *Watcher) stopTimers() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for path, t := range w.timers {
		t.Stop()
		delete(w.timers, path)
	}
}
