// Package commands holds the kubectl-qjob commands: run, status, output and
// versions. Each reads what the controller recorded in a QuarksJob's status
// and the objects it names; none needs more rights than reading QuarksJobs,
// Jobs, pods, logs and Secrets in the namespace (and patching the QuarksJob,
// for run).
package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/version"
)

// Exit codes of kubectl-qjob.
const (
	// ExitRunFailed: the run the command waited for failed.
	ExitRunFailed = 1
	// ExitCommandFailed: the command could not do what it was asked (bad arguments,
	// a missing right, an unreachable API server).
	ExitCommandFailed = 2
	// ExitTimeout: --timeout passed before the run ended. The run goes on.
	ExitTimeout = 3
	// ExitInterrupted: interrupted while waiting. The run goes on.
	ExitInterrupted = 130
)

// ExitError ends the command with Code; Err, when set, is printed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit code for err returned by the root command.
func ExitCode(err error) int {
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	if err != nil {
		return ExitCommandFailed
	}
	return 0
}

// scheme knows the built-in kinds and QuarksJobs.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := qjv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// globals are what every command shares: kubectl's connection flags and the
// streams.
type globals struct {
	config  *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
}

// session is a connection to the cluster in the chosen namespace.
type session struct {
	namespace string
	client    client.WithWatch
	clientset kubernetes.Interface
}

func (g *globals) connect() (*session, error) {
	namespace, _, err := g.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, err
	}
	cfg, err := g.config.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &session{namespace: namespace, client: c, clientset: clientset}, nil
}

// NewCommand returns the kubectl-qjob command.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	g := &globals{
		config:  genericclioptions.NewConfigFlags(true),
		streams: streams,
	}
	cmd := &cobra.Command{
		Use:   "kubectl-qjob",
		Short: "Run QuarksJob errands and read their results",
		// kubectl runs kubectl-qjob for "kubectl qjob": help and completion say so.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl qjob"},
		Long: `Run QuarksJob errands and one-offs, and read what their runs did.

 Find more information about QuarksJobs in the quarks-job documentation (docs/plugin.md).`,
		Example: `  # Run the errand "smoke-tests", follow its logs, and exit with its result
  kubectl qjob run smoke-tests --logs

  # The last runs of a QuarksJob and what it waits for
  kubectl qjob status smoke-tests

  # The Secrets its last run wrote, keys listed, values masked
  kubectl qjob output smoke-tests

  # The versions of a versioned Secret and the runs that wrote them
  kubectl qjob versions creds`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version, not a version command: "kubectl qjob version" would be one letter away from
		// "kubectl qjob versions", which lists a Secret's versions.
		Version: version.Get().String(),
	}
	cmd.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	g.config.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(newRunCommand(g), newStatusCommand(g), newOutputCommand(g), newVersionsCommand(g))
	cmd.CompletionOptions.HiddenDefaultCmd = false
	return cmd
}

// explain turns an API error into what a user can act on: which right is
// missing, or which object does not exist.
func explain(err error, verb, resource, namespace, name string) error {
	if err == nil {
		return nil
	}
	what := resource
	if name != "" {
		what = fmt.Sprintf("%s %q", strings.TrimSuffix(resource, "s"), name)
	}
	switch {
	case apierrors.IsForbidden(err):
		return &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf(
			"you may not %s %s in namespace %q; ask for that right (kubectl auth can-i %s %s -n %s): %w",
			verb, what, namespace, verb, resource, namespace, err)}
	case apierrors.IsNotFound(err) && name != "":
		return &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf("%s not found in namespace %q", what, namespace)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf("%s %s in namespace %q: %w", verb, what, namespace, err)}
}

// getQuarksJob reads the QuarksJob name.
func (s *session) getQuarksJob(ctx context.Context, name string) (*qjv1.QuarksJob, error) {
	qjob := &qjv1.QuarksJob{}
	err := s.client.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: name}, qjob)
	return qjob, explain(err, "get", "quarksjobs", s.namespace, name)
}

// completeQuarksJobs completes the first argument with the QuarksJobs of the
// namespace.
func (g *globals) completeQuarksJobs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	s, err := g.connect()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	list := &qjv1.QuarksJobList{}
	if err := s.client.List(cmd.Context(), list, client.InNamespace(s.namespace)); err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []string
	for _, q := range list.Items {
		if strings.HasPrefix(q.Name, toComplete) {
			names = append(names, q.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
