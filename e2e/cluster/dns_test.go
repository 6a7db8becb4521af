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

// On a cluster of several nodes (make e2e's kind cluster) the client runs on
// another node than the server, so the pod network and the Service rules are
// checked across nodes.
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
	serverNode := e.waitPod(server.Name, corev1.PodRunning).Spec.NodeName

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
	client.Spec.NodeName = e.otherSchedulableNode(serverNode)
	if _, err := e.client.CoreV1().Pods(e.namespace).Create(e.ctx, client, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clientNode := e.waitPod(client.Name, corev1.PodSucceeded).Spec.NodeName
	t.Logf("server on node %s, client on node %s", serverNode, clientNode)
	if got, want := e.logs(client.Name, "wget"), "hello from web"; !strings.Contains(got, want) {
		t.Errorf("client pod got %q from http://%s/, want %q", got, host, want)
	}
}

// otherSchedulableNode is a Ready node other than node that takes pods
// without tolerations, or "" (the scheduler's choice) when there is none.
func (e *env) otherSchedulableNode(node string) string {
	nodes, err := e.client.CoreV1().Nodes().List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if n.Name == node || n.Spec.Unschedulable || !nodeReady(n) || hasNoScheduleTaint(n) {
			continue
		}
		return n.Name
	}
	return ""
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func hasNoScheduleTaint(n corev1.Node) bool {
	for _, taint := range n.Spec.Taints {
		if taint.Effect == corev1.TaintEffectNoSchedule || taint.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}
