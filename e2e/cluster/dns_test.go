//go:build e2e

package cluster_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPodReachesPodThroughServiceDNSName(t *testing.T) {
	t.Parallel()
	e := setUp(t)
	labels := map[string]string{"app": "web"}
	server := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "httpd", Image: busybox,
				Command:        []string{"sh", "-c", `mkdir -p /www && echo "hello from $HOSTNAME" > /www/index.html && exec httpd -f -p 8080 -h /www`},
				Ports:          []corev1.ContainerPort{{ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
			}},
		},
	}
	if _, err := e.client.CoreV1().Pods(e.namespace).Create(e.ctx, server, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	service := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := e.client.CoreV1().Services(e.namespace).Create(e.ctx, service, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitPod(server.Name, corev1.PodRunning)

	// The client retries for a while: the Service's endpoints and rules
	// appear a moment after the server pod is ready. (Debian's static
	// busybox wget crashes with -T; timeout bounds each try instead.)
	host := fmt.Sprintf("web.%s.svc", e.namespace)
	client := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "wget", Image: busybox,
				Command: []string{"sh", "-c", fmt.Sprintf(
					`for i in $(seq 1 60); do if timeout 5 wget -q -O - http://%s/; then exit 0; fi; sleep 1; done; nslookup %s.cluster.local; exit 1`, host, host)},
			}},
		},
	}
	if _, err := e.client.CoreV1().Pods(e.namespace).Create(e.ctx, client, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitPod(client.Name, corev1.PodSucceeded)
	if got, want := e.logs(client.Name, "wget"), "hello from web"; !strings.Contains(got, want) {
		t.Errorf("client pod got %q from http://%s/, want %q", got, host, want)
	}
}
