// Command kubectl-qjob is a kubectl plugin for QuarksJobs: `kubectl qjob run`
// triggers an errand and waits for its result; status, output and versions
// read what runs did. The commands live in internal/commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"code.cloudfoundry.org/quarks-job/kubectl-qjob/internal/commands"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := commands.NewCommand(streams).ExecuteContext(ctx)
	stop()
	code := commands.ExitCode(err)
	if err != nil && err.Error() != fmt.Sprintf("exit code %d", code) {
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	os.Exit(code)
}
