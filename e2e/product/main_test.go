//go:build e2e

// Package product_test is the product's end-to-end suite: it installs the Helm chart into the
// cluster in KUBECONFIG (the local cluster of make e2e-local, or kind with make e2e), with the
// images the build produced, and checks what a user sees: the docs examples, output Secrets,
// failures, PodSecurity, an unavailable webhook, helm upgrade and helm uninstall.
//
// Environment (the Makefile sets it):
//
//	KUBECONFIG                   the cluster (required)
//	E2E_IMAGE_REPO, E2E_IMAGE_TAG where the images are (docker.io/cfcontainerization, dev)
//	E2E_IMAGE_PULL_POLICY        pull policy of all three images (IfNotPresent)
//	E2E_REGISTRY                 the local cluster's registry (host:port); when set, the suite
//	                             tags the persister image a second time there for the upgrade test
//	E2E_PERSISTER_PINNED_TAG     that second tag (e2e-pinned); without E2E_REGISTRY it must exist
package product_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	helmkube "helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/storage/driver"
	"helm.sh/helm/v3/pkg/strvals"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	chartDir    = "../../charts/quarks-job"
	examplesDir = "../../docs/examples"
	releaseName = "quarks-job"
	// releaseNS is where the chart is installed; the tests' QuarksJobs run in namespaces of
	// their own.
	releaseNS = "quarks-job-e2e"

	// Objects of the release (release name quarks-job: full name quarks-job).
	controllerDeployment = "quarks-job"
	webhookDeployment    = "quarks-job-webhook"
	webhookConfiguration = "quarks-job-webhook"
	crdName              = "quarksjobs.quarks.cloudfoundry.org"

	// versionedSecretWriter stands for another operator that writes versioned Secrets: the
	// install exempts it from the admission policy, and tests impersonate it.
	versionedSecretWriter = "system:serviceaccount:" + releaseNS + ":versioned-secret-writer"

	// installTimeout bounds a rollout: image pulls, the webhook's certificates, the controller
	// waiting for its output certificate.
	installTimeout = 4 * time.Minute
)

// suite is what TestMain sets up; the tests only read it.
var suite struct {
	kubeconfig string
	config     *rest.Config
	kube       kubernetes.Interface
	dynamic    dynamic.Interface
	apiext     apiextensionsclient.Interface
	mapper     meta.RESTMapper
	chart      *chart.Chart

	imageRepo, imageTag, pullPolicy string
	registry, pinnedTag             string
	// sets are the --set values of the install; an upgrade adds its own.
	sets []string
}

// suiteInstallsChart: TestMain installs the chart from this checkout before the tests and
// removes it after them. The release test (build tag release) installs releases itself.
var suiteInstallsChart = true

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The tests mostly wait for pods: run more of them at once than the default GOMAXPROCS.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "16")
	}
	if err := connect(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/product:", err)
		return 1
	}
	if suiteInstallsChart {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), installTimeout+2*time.Minute)
		err := installChart(ctx, suite.chart, nil)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e/product: installing the chart:", err)
			dumpNamespace(releaseNS)
			uninstallQuietly()
			deleteNamespace(releaseNS)
			return 1
		}
		fmt.Printf("e2e/product: chart installed and ready in %s\n", time.Since(start).Round(100*time.Millisecond))
	}
	code := m.Run()
	// TestProduct ends with helm uninstall; a run of a subset (-run) or a failure before it leaves
	// the release, which is removed here.
	uninstallQuietly()
	deleteNamespace(releaseNS)
	return code
}

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// connect reads KUBECONFIG and checks the cluster answers. Without one the suite fails: it never
// skips.
func connect() error {
	suite.kubeconfig = os.Getenv("KUBECONFIG")
	if suite.kubeconfig == "" {
		return fmt.Errorf("KUBECONFIG is not set: the e2e suite needs a cluster (make e2e-local starts one, make e2e uses kind)")
	}
	config, err := clientcmd.BuildConfigFromFlags("", suite.kubeconfig)
	if err != nil {
		return fmt.Errorf("KUBECONFIG=%s: %w", suite.kubeconfig, err)
	}
	config.Timeout = 30 * time.Second
	config.QPS, config.Burst = 50, 100
	suite.config = config
	if suite.kube, err = kubernetes.NewForConfig(config); err != nil {
		return err
	}
	if suite.dynamic, err = dynamic.NewForConfig(config); err != nil {
		return err
	}
	if suite.apiext, err = apiextensionsclient.NewForConfig(config); err != nil {
		return err
	}
	version, err := suite.kube.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("the cluster in KUBECONFIG=%s is not reachable: %w", suite.kubeconfig, err)
	}
	suite.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(suite.kube.Discovery()))
	fmt.Printf("e2e/product: cluster %s, Kubernetes %s\n", config.Host, version.GitVersion)

	suite.imageRepo = strings.TrimSuffix(env("E2E_IMAGE_REPO", "docker.io/cfcontainerization"), "/")
	suite.imageTag = env("E2E_IMAGE_TAG", "dev")
	suite.pullPolicy = env("E2E_IMAGE_PULL_POLICY", "IfNotPresent")
	suite.registry = os.Getenv("E2E_REGISTRY")
	suite.pinnedTag = env("E2E_PERSISTER_PINNED_TAG", "e2e-pinned")
	suite.sets = []string{
		"controller.image.repository=" + suite.imageRepo + "/quarks-job",
		"controller.image.tag=" + suite.imageTag,
		"controller.image.pullPolicy=" + suite.pullPolicy,
		"webhook.image.repository=" + suite.imageRepo + "/quarks-job-webhook",
		"webhook.image.tag=" + suite.imageTag,
		"webhook.image.pullPolicy=" + suite.pullPolicy,
		"persister.image.repository=" + suite.imageRepo + "/quarks-job-persister",
		"persister.image.tag=" + suite.imageTag,
		"persister.image.pullPolicy=" + suite.pullPolicy,
		// Another operator writing versioned Secrets (as quarks-secret does) is listed here.
		"admissionPolicy.exemptUsers[0]=" + versionedSecretWriter,
	}
	suite.chart, err = loader.Load(chartDir)
	if err != nil {
		return fmt.Errorf("loading the chart %s: %w", chartDir, err)
	}
	return nil
}

// helmConfig is an action configuration for the release namespace; helm's
// debug log is dropped.
func helmConfig() (*action.Configuration, error) {
	cfg := &action.Configuration{}
	getter := helmkube.GetConfig(suite.kubeconfig, "", releaseNS)
	if err := cfg.Init(getter, releaseNS, "secret", func(string, ...any) {}); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parseSets(sets []string) (map[string]any, error) {
	vals := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
	}
	return vals, nil
}

// installChart installs ch with vals, or with the suite's values when vals is nil (removing a
// release a crashed run left first), and waits until the operator is ready.
func installChart(ctx context.Context, ch *chart.Chart, vals map[string]any) error {
	cfg, err := helmConfig()
	if err != nil {
		return err
	}
	if _, err := action.NewHistory(cfg).Run(releaseName); err == nil {
		fmt.Println("e2e/product: removing the release a previous run left")
		uninstallQuietly()
	} else if !errors.Is(err, driver.ErrReleaseNotFound) {
		return fmt.Errorf("helm history: %w", err)
	}
	if err := prepareInstall(ctx); err != nil {
		return err
	}
	if vals == nil {
		if vals, err = parseSets(suite.sets); err != nil {
			return err
		}
	}
	in := action.NewInstall(cfg)
	in.ReleaseName = releaseName
	in.Namespace = releaseNS
	in.CreateNamespace = true
	in.Timeout = installTimeout
	if _, err := in.RunWithContext(ctx, ch, vals); err != nil {
		return fmt.Errorf("helm install: %w", err)
	}
	return waitOperatorReady(ctx)
}

// prepareInstall waits until a release namespace a previous run deleted is gone, and lets this
// release adopt a QuarksJob CRD that an earlier release kept (crds.keep), as docs/guide.md says.
func prepareInstall(ctx context.Context) error {
	err := poll(ctx, time.Second, func() (bool, string) {
		ns, err := suite.kube.CoreV1().Namespaces().Get(ctx, releaseNS, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err == nil && ns.DeletionTimestamp == nil {
			deleteNamespace(releaseNS)
		}
		return false, fmt.Sprintf("namespace %s of a previous run is still there (%v)", releaseNS, err)
	})
	if err != nil {
		return err
	}
	crd, err := suite.apiext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crdName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if crd.Annotations["meta.helm.sh/release-name"] == releaseName && crd.Annotations["meta.helm.sh/release-namespace"] == releaseNS {
		return nil
	}
	fmt.Printf("e2e/product: adopting the CRD %s (release %q in %q)\n", crdName,
		crd.Annotations["meta.helm.sh/release-name"], crd.Annotations["meta.helm.sh/release-namespace"])
	patch := fmt.Sprintf(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":"Helm"},"annotations":{"meta.helm.sh/release-name":%q,"meta.helm.sh/release-namespace":%q}}}`, releaseName, releaseNS)
	_, err = suite.apiext.ApiextensionsV1().CustomResourceDefinitions().Patch(ctx, crdName, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// waitOperatorReady waits until both Deployments are rolled out and Available, and the webhook
// has patched its CA bundle into both webhook configurations.
func waitOperatorReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	for _, name := range []string{webhookDeployment, controllerDeployment} {
		if err := waitRolledOut(ctx, name); err != nil {
			return err
		}
	}
	return poll(ctx, time.Second, func() (bool, string) {
		m, err := suite.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhookConfiguration, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		v, err := suite.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhookConfiguration, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, w := range m.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false, "mutating webhook " + w.Name + " has no caBundle yet"
			}
		}
		for _, w := range v.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false, "validating webhook " + w.Name + " has no caBundle yet"
			}
		}
		return true, ""
	})
}

// waitRolledOut waits until the release's Deployment's newest generation is fully rolled out and
// Available.
func waitRolledOut(ctx context.Context, name string) error {
	err := poll(ctx, time.Second, func() (bool, string) {
		d, err := suite.kube.AppsV1().Deployments(releaseNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != want || s.Replicas != want || s.AvailableReplicas != want {
			return false, fmt.Sprintf("%d/%d updated, %d replicas, %d available", s.UpdatedReplicas, want, s.Replicas, s.AvailableReplicas)
		}
		for _, c := range s.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, "not Available"
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s: %w", releaseNS, name, err)
	}
	return nil
}

// uninstallQuietly removes the release if it exists, waiting for its objects to go.
func uninstallQuietly() {
	cfg, err := helmConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e/product: helm:", err)
		return
	}
	if _, err := action.NewHistory(cfg).Run(releaseName); err != nil {
		return
	}
	un := action.NewUninstall(cfg)
	un.Wait = true
	un.Timeout = 2 * time.Minute
	if _, err := un.Run(releaseName); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/product: helm uninstall:", err)
	}
}

func deleteNamespace(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := suite.kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintf(os.Stderr, "e2e/product: deleting namespace %s: %v\n", name, err)
	}
}

// poll calls check every interval until it returns true or ctx ends; the error then carries
// check's last explanation.
func poll(ctx context.Context, interval time.Duration, check func() (bool, string)) error {
	last := ""
	for {
		ok, why := check()
		if ok {
			return nil
		}
		if why != "" {
			last = why
		}
		select {
		case <-ctx.Done():
			if last == "" {
				last = "condition not met"
			}
			return fmt.Errorf("%s (%w)", last, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// dumpNamespace prints the pods and events of a namespace, for a failed install.
func dumpNamespace(namespace string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, line := range describeNamespace(ctx, namespace) {
		fmt.Fprintln(os.Stderr, line)
	}
}

func describeNamespace(ctx context.Context, namespace string) []string {
	var out []string
	pods, err := suite.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, p := range pods.Items {
			out = append(out, fmt.Sprintf("pod %s/%s: phase %s %s", namespace, p.Name, p.Status.Phase, p.Status.Message))
			for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
				out = append(out, fmt.Sprintf("  container %s (%s): %s", s.Name, s.Image, stateString(s.State)))
			}
		}
	}
	events, err := suite.kube.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, ev := range events.Items {
			out = append(out, fmt.Sprintf("event %s %s/%s: %s %s: %s", ev.Type, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason, ev.Source.Component, ev.Message))
		}
	}
	return out
}

func stateString(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running since " + s.Running.StartedAt.Format(time.RFC3339)
	case s.Terminated != nil:
		return fmt.Sprintf("terminated, exit code %d (%s) %s", s.Terminated.ExitCode, s.Terminated.Reason, s.Terminated.Message)
	case s.Waiting != nil:
		return fmt.Sprintf("waiting (%s) %s", s.Waiting.Reason, s.Waiting.Message)
	}
	return "unknown"
}
