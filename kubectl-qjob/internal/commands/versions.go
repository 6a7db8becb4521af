package commands

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

type versionsOptions struct {
	*globals
	print *genericclioptions.PrintFlags
}

func newVersionsCommand(g *globals) *cobra.Command {
	o := &versionsOptions{globals: g, print: newPrintFlags()}
	cmd := &cobra.Command{
		Use:   "versions SECRET",
		Short: "List the versions of a versioned Secret and the runs that wrote them",
		Long: `List the versions SECRET-v1, SECRET-v2, ... of the versioned Secret SECRET,
newest first, with their age, their keys, and the QuarksJob and run that
wrote each. Values are never printed; -o json or -o yaml prints the Secrets
with their values masked.`,
		Example: `  # Which run wrote each version of creds?
  kubectl qjob versions creds`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeVersionedSecrets,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args[0])
		},
	}
	o.print.AddFlags(cmd)
	return cmd
}

func (o *versionsOptions) run(ctx context.Context, base string) error {
	if err := checkOutputFormat(o.print); err != nil {
		return err
	}
	s, err := o.connect()
	if err != nil {
		return err
	}
	if b, v, ok := qjv1.ParseVersionedName(base); ok {
		return &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf("%q is version %d of %q; give the name without the version: kubectl qjob versions %s", base, v, b, b)}
	}
	versions, err := s.versions(ctx, base)
	if err != nil {
		return err
	}
	if o.print.OutputFormat != nil && *o.print.OutputFormat != "" {
		return printObject(o.print, list(asObjects(versions, false)), o.streams.Out)
	}
	if len(versions) == 0 {
		return &ExitError{Code: ExitCommandFailed, Err: fmt.Errorf("no versions of Secret %q in namespace %q (versions are Secrets named %s-v<N> labeled %s=%s)",
			base, s.namespace, base, qjv1.LabelSecretKind, qjv1.SecretKindVersioned)}
	}
	printSecrets(o.streams.Out, versions, time.Now(), true)
	return nil
}

// versions lists the versions of base, newest first.
func (s *session) versions(ctx context.Context, base string) ([]corev1.Secret, error) {
	all := &corev1.SecretList{}
	if err := s.client.List(ctx, all, client.InNamespace(s.namespace), client.MatchingLabels{qjv1.LabelSecretKind: qjv1.SecretKindVersioned}); err != nil {
		return nil, explain(err, "list", "secrets", s.namespace, "")
	}
	type version struct {
		secret corev1.Secret
		n      int64
	}
	var found []version
	for _, secret := range all.Items {
		if b, n, ok := qjv1.ParseVersionedName(secret.Name); ok && b == base {
			found = append(found, version{secret, n})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n > found[j].n })
	secrets := make([]corev1.Secret, len(found))
	for i := range found {
		secrets[i] = found[i].secret
	}
	return secrets, nil
}

// completeVersionedSecrets completes the first argument with the names of
// the versioned Secrets of the namespace.
func (g *globals) completeVersionedSecrets(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	s, err := g.connect()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	all := &metav1.PartialObjectMetadataList{}
	all.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := s.client.List(cmd.Context(), all, client.InNamespace(s.namespace), client.MatchingLabels{qjv1.LabelSecretKind: qjv1.SecretKindVersioned}); err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	seen := map[string]bool{}
	var names []string
	for _, secret := range all.Items {
		if b, _, ok := qjv1.ParseVersionedName(secret.Name); ok && !seen[b] && strings.HasPrefix(b, toComplete) {
			seen[b] = true
			names = append(names, b)
		}
	}
	sort.Strings(names)
	return names, cobra.ShellCompDirectiveNoFileComp
}
