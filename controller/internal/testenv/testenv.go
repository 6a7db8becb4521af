// Package testenv starts the control plane of the module's integration
// tests: a real kube-apiserver and etcd (envtest), from the binaries `make
// kube` builds into bin/kube, with the chart's CRDs installed. Every suite of
// the module starts it here, so that they agree on where the binaries and
// CRDs are and fail the same clear way when they are missing.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Scheme holds client-go's types and the QuarksJob API.
func Scheme() (*k8sruntime.Scheme, error) {
	scheme := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{clientgoscheme.AddToScheme, qjv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return scheme, nil
}

// Environment is a control plane with the chart's CRDs and scheme, not yet
// started; a suite may change it (webhooks, API server flags) before Start.
// Without KUBEBUILDER_ASSETS, the binaries are the repository's bin/kube.
func Environment(scheme *k8sruntime.Scheme) *envtest.Environment {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		_ = os.Setenv("KUBEBUILDER_ASSETS", filepath.Join(Root(), "bin", "kube"))
	}
	return &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(Root(), "charts", "quarks-job", "files", "crds")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
}

// Start starts env; its error names the binaries' directory.
func Start(env *envtest.Environment) (*rest.Config, error) {
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane (KUBEBUILDER_ASSETS=%s; `make kube` builds it): %w", os.Getenv("KUBEBUILDER_ASSETS"), err)
	}
	return cfg, nil
}

// Buffer collects a process's output while a test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

var _ io.Writer = (*Buffer)(nil)

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Eventually polls check until it returns nil, and fails the test with what
// and check's last error if it has not within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 25*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		last = check()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: %v", what, last)
	}
}

// WaitSettled waits, up to 10 minutes, until the operator has written the
// status of all n QuarksJobs of ns (each status observed its generation):
// they are up to date, and the operator is idle.
func WaitSettled(t testing.TB, c client.Reader, ns string, n int) {
	t.Helper()
	Eventually(t, 10*time.Minute, fmt.Sprintf("the status of the %d QuarksJobs of %s", n, ns), func() error {
		list := &qjv1.QuarksJobList{}
		if err := c.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return err
		}
		settled := 0
		for _, q := range list.Items {
			if q.Status.ObservedGeneration == q.Generation {
				settled++
			}
		}
		if settled != n {
			return fmt.Errorf("the operator wrote the status of %d of %d", settled, n)
		}
		return nil
	})
}
