//go:build e2e

// Package cluster_test checks that a cluster can run what quarks-job needs:
// Jobs whose pods really run, native sidecars, pod-bound service-account
// tokens and Service DNS. It runs against the cluster in KUBECONFIG: the
// local cluster (make e2e-local) or kind (make e2e).
package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Bounds of the waits; generous for a loaded 2-core machine, short enough
// that a broken cluster fails the suite quickly.
const (
	podTimeout = 2 * time.Minute
	poll       = 250 * time.Millisecond
)

// busybox is pulled as `image: busybox` would be in a user's manifest.
const busybox = "busybox"

// probeImage is the image of ./probe; the Makefile builds it.
func probeImage() string {
	if image := os.Getenv("E2E_PROBE_IMAGE"); image != "" {
		return image
	}
	return "docker.io/cfcontainerization/quarks-job-e2e-probe:dev"
}

type env struct {
	t         *testing.T
	ctx       context.Context
	config    *rest.Config
	client    kubernetes.Interface
	namespace string
}

// setUp connects to the cluster in KUBECONFIG, failing (not skipping) the
// test when there is none, and creates a namespace that is deleted after it.
func setUp(t *testing.T) *env {
	t.Helper()
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		t.Fatal("KUBECONFIG is not set: the e2e suite needs a cluster (make e2e-local starts one, make e2e uses kind)")
	}
	config, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("KUBECONFIG=%s: %v", path, err)
	}
	config.Timeout = 15 * time.Second
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	version, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("the cluster in KUBECONFIG=%s is not reachable: %v", path, err)
	}
	t.Logf("cluster %s, Kubernetes %s", config.Host, version.GitVersion)
	ctx := t.Context()
	ns, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-cluster-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	e := &env{t: t, ctx: ctx, config: config, client: client, namespace: ns.Name}
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpPods()
		}
		_ = client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return e
}

// waitJob waits until the Job is Complete, failing on Failed or timeout.
func (e *env) waitJob(name string) {
	e.t.Helper()
	var last error // of getting the Job, which the poll retries
	err := wait.PollUntilContextTimeout(e.ctx, poll, podTimeout, true, func(ctx context.Context) (bool, error) {
		job, err := e.client.BatchV1().Jobs(e.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil //nolint:nilerr // retried until podTimeout, then reported
		}
		for _, c := range job.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				return false, fmt.Errorf("job %s failed: %s: %s", name, c.Reason, c.Message)
			}
		}
		return false, nil
	})
	if err != nil {
		e.t.Fatalf("job %s/%s did not complete within %s: %v (last error: %v)", e.namespace, name, podTimeout, err, last)
	}
}

// waitPod waits until the pod reaches phase.
func (e *env) waitPod(name string, phase corev1.PodPhase) *corev1.Pod {
	e.t.Helper()
	var pod *corev1.Pod
	var last error // of getting the pod, which the poll retries
	err := wait.PollUntilContextTimeout(e.ctx, poll, podTimeout, true, func(ctx context.Context) (bool, error) {
		var err error
		pod, err = e.client.CoreV1().Pods(e.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil //nolint:nilerr // retried until podTimeout, then reported
		}
		if pod.Status.Phase == corev1.PodFailed && phase != corev1.PodFailed {
			return false, fmt.Errorf("pod failed")
		}
		return pod.Status.Phase == phase, nil
	})
	if err != nil {
		e.t.Fatalf("pod %s/%s did not reach %s within %s: %v (last error: %v)", e.namespace, name, phase, podTimeout, err, last)
	}
	return pod
}

func (e *env) jobPod(job string) *corev1.Pod {
	e.t.Helper()
	pods, err := e.client.CoreV1().Pods(e.namespace).List(e.ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		e.t.Fatalf("job %s has %d pods, want 1", job, len(pods.Items))
	}
	return &pods.Items[0]
}

func (e *env) logs(pod, container string) string {
	e.t.Helper()
	raw, err := e.client.CoreV1().Pods(e.namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(e.ctx)
	if err != nil {
		e.t.Fatalf("logs of %s/%s container %s: %v", e.namespace, pod, container, err)
	}
	return string(raw)
}

// dumpPods logs each pod's status and events, for a failed test.
func (e *env) dumpPods() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pods, err := e.client.CoreV1().Pods(e.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		var b bytes.Buffer
		fmt.Fprintf(&b, "pod %s: phase %s %s\n", p.Name, p.Status.Phase, p.Status.Message)
		for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			fmt.Fprintf(&b, "  container %s: %+v\n", s.Name, s.State)
		}
		e.t.Log(strings.TrimSpace(b.String()))
	}
	events, err := e.client.CoreV1().Events(e.namespace).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, ev := range events.Items {
			e.t.Logf("event %s %s: %s %s", ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason, ev.Message)
		}
	}
}
