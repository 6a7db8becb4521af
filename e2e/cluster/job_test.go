//go:build e2e

package cluster_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestJobWithTwoContainersRunsToCompletion(t *testing.T) {
	t.Parallel()
	e := setUp(t)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "two-containers"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{
					{Name: "first", Image: busybox, Command: []string{"sh", "-c", "echo output of the first container"}},
					{Name: "second", Image: busybox, Command: []string{"sh", "-c", "sleep 1; echo output of the second container"}},
				},
			}},
		},
	}
	if _, err := e.client.BatchV1().Jobs(e.namespace).Create(e.ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitJob(job.Name)
	pod := e.jobPod(job.Name)
	for container, want := range map[string]string{"first": "output of the first container", "second": "output of the second container"} {
		if got := e.logs(pod.Name, container); !strings.Contains(got, want) {
			t.Errorf("logs of container %s = %q, want %q", container, got, want)
		}
	}

	// What a user types: kubectl logs of both containers.
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		kubectl = "kubectl"
	}
	if _, err := exec.LookPath(kubectl); err != nil {
		t.Fatalf("kubectl not found (set KUBECTL): %v", err)
	}
	out, err := exec.CommandContext(e.ctx, kubectl, "logs", "--namespace", e.namespace, "job/"+job.Name, "--all-containers", "--prefix").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl logs: %v: %s", err, out)
	}
	for _, want := range []string{"/first] output of the first container", "/second] output of the second container"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl logs printed %q, want a line with %q", out, want)
		}
	}
}

func TestNativeSidecarIsStoppedWhenMainContainerEnds(t *testing.T) {
	t.Parallel()
	e := setUp(t)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "native-sidecar"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				// Longer than the test's wait: the Job can only complete in
				// time if the sidecar is told to stop when main ends.
				TerminationGracePeriodSeconds: ptr.To[int64](300),
				InitContainers: []corev1.Container{{
					Name: "sidecar", Image: busybox, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
					Command: []string{"sh", "-c", `trap 'echo sidecar got SIGTERM; exit 0' TERM; echo sidecar started; while true; do sleep 1; done`},
				}},
				Containers: []corev1.Container{{
					Name: "main", Image: busybox, Command: []string{"sh", "-c", "sleep 2; echo main done"},
				}},
			}},
		},
	}
	start := time.Now()
	if _, err := e.client.BatchV1().Jobs(e.namespace).Create(e.ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitJob(job.Name)
	t.Logf("job with a native sidecar completed in %s", time.Since(start).Round(time.Millisecond))
	pod := e.jobPod(job.Name)
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Errorf("pod phase %s, want Succeeded", pod.Status.Phase)
	}
	if len(pod.Status.InitContainerStatuses) != 1 || pod.Status.InitContainerStatuses[0].State.Terminated == nil {
		t.Fatalf("sidecar not terminated: %+v", pod.Status.InitContainerStatuses)
	}
	sidecar := pod.Status.InitContainerStatuses[0].State.Terminated
	main := pod.Status.ContainerStatuses[0].State.Terminated
	if main == nil || main.ExitCode != 0 {
		t.Fatalf("main container: %+v", pod.Status.ContainerStatuses[0].State)
	}
	if sidecar.FinishedAt.Before(&main.FinishedAt) {
		t.Errorf("sidecar finished at %s, before main at %s", sidecar.FinishedAt, main.FinishedAt)
	}
	if got := e.logs(pod.Name, "sidecar"); !strings.Contains(got, "sidecar got SIGTERM") {
		t.Errorf("sidecar logs %q: the sidecar was not stopped with SIGTERM", got)
	}
}
