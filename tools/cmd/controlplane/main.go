// Command controlplane starts a local Kubernetes control plane (etcd and
// kube-apiserver built from the Kubernetes Go modules), installs the
// QuarksJob CRD, writes a kubeconfig, and runs a command against it, such as
// the operator. There are no nodes: Jobs are created but no pods run. Use the
// local cluster (make cluster-up) for that.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	var assets, dir, crds string
	cmd := &cobra.Command{
		Use:   "controlplane [flags] -- COMMAND [ARGS...]",
		Short: "Run a command against a local control plane with the QuarksJob CRD installed",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return run(assets, dir, crds, args)
		},
	}
	cmd.Flags().StringVar(&assets, "assets", "", "folder holding kube-apiserver, etcd and kubectl")
	cmd.Flags().StringVar(&dir, "dir", "bin/run", "folder for the kubeconfig")
	cmd.Flags().StringVar(&crds, "crds", "../charts/quarks-job/files/crds", "folder of the CRD manifests")
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}

func run(assets, dir, crds string, command []string) error {
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{crds},
		ErrorIfCRDPathMissing: true,
	}
	config, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()

	user, err := env.AddUser(envtest.User{Name: "developer", Groups: []string{"system:masters"}}, config)
	if err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path, err := filepath.Abs(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return err
	}
	fmt.Printf(`
Control plane ready. In another shell:

  export KUBECONFIG=%s
  kubectl apply -f docs/examples/errand.yaml
  kubectl patch qjob errand --type merge -p '{"spec":{"trigger":{"strategy":"now"}}}'
  kubectl get qjob,jobs

(no nodes here: Jobs are created but their pods do not run; make cluster-up runs them)

`, path)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "KUBECONFIG="+path)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", command[0], err)
	}
	return nil
}
