// Package testenv starts the control plane of the module's integration
// tests: a real kube-apiserver and etcd (envtest), from the binaries `make
// kube` builds into bin/kube, with the chart's CRDs installed. Every suite of
// the module starts it here, so that they agree on where the binaries and
// CRDs are and fail the same clear way when they are missing.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
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
