// Command cluster starts and stops the local single-node Kubernetes cluster
// (see the cluster package), and runs its image registry.
//
//	cluster up   --dir bin/cluster --assets bin/kube --coredns bin/coredns --images bin/images
//	cluster down --dir bin/cluster
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"code.cloudfoundry.org/quarks-job/tools/internal/cluster"
	"code.cloudfoundry.org/quarks-job/tools/internal/mirror"
)

func main() {
	if err := run(); err != nil {
		os.Exit(1) // the error is printed already
	}
}

func run() error {
	var c cluster.Config
	root := &cobra.Command{
		Use:          "cluster",
		Short:        "A single-node Kubernetes cluster of local processes",
		SilenceUsage: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			for _, p := range []*string{&c.Dir, &c.Assets, &c.CoreDNS, &c.Images} {
				abs, err := filepath.Abs(*p)
				if err != nil {
					return err
				}
				*p = abs
			}
			return nil
		},
	}
	flags := root.PersistentFlags()
	flags.StringVar(&c.Dir, "dir", "cluster", "folder for the cluster's state, logs and kubeconfig")
	flags.StringVar(&c.Assets, "assets", "kube", "folder with etcd and the Kubernetes binaries")
	flags.StringVar(&c.CoreDNS, "coredns", "coredns", "the coredns binary")
	flags.StringVar(&c.Images, "images", "images", "folder of image tarballs the registry serves (pause.tar at least)")
	flags.StringVar(&c.Registry, "registry", "127.0.0.1:5050", "loopback address of the image registry")
	flags.DurationVar(&c.Timeout, "timeout", 2*time.Minute, "how long to wait for each component")

	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cluster.RegistryCommand = func(c cluster.Config) (string, []string) {
		return self, []string{"registry", "--dir", c.Dir, "--images", c.Images, "--registry", c.Registry}
	}

	root.AddCommand(
		&cobra.Command{
			Use:   "up",
			Short: "Start the cluster; prints the kubeconfig's path",
			RunE: func(cmd *cobra.Command, _ []string) error {
				return cluster.Up(ctx, c, cmd.ErrOrStderr())
			},
		},
		&cobra.Command{
			Use:   "down",
			Short: "Stop the cluster and remove everything it left on the machine",
			RunE: func(cmd *cobra.Command, _ []string) error {
				return cluster.Down(ctx, c, cmd.ErrOrStderr())
			},
		},
		restartCommand(ctx, &c),
		&cobra.Command{
			Use:    "registry",
			Short:  "Run the image registry (started by up)",
			Hidden: true,
			RunE: func(*cobra.Command, []string) error {
				return mirror.Serve(ctx, c.Registry, c.Images)
			},
		},
	)
	return root.Execute()
}

// restartCommand is the control-plane fault of make chaos: the API server (or etcd) killed with
// SIGKILL and started again after a while.
func restartCommand(ctx context.Context, c *cluster.Config) *cobra.Command {
	var down time.Duration
	cmd := &cobra.Command{
		Use:   "restart kube-apiserver|etcd",
		Short: "Kill a control-plane daemon with SIGKILL, keep it down for --down, start it again and wait until it serves",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cluster.Restart(ctx, *c, args[0], down, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().DurationVar(&down, "down", 10*time.Second, "how long the daemon stays down")
	return cmd
}
