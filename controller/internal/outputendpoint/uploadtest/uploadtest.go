// Package uploadtest plays the parts around the output endpoint that a
// cluster plays, for the tests and benchmarks that run the endpoint against
// a test API server without a kubelet: a serving certificate, a run's pod
// with the persister, the containers' exit, the pod-bound token, and the
// upload the persister sends.
package uploadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/cert"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"code.cloudfoundry.org/quarks-job/api/upload"
)

// ServiceAccount is the service account the pods run as; a test creates it
// in each namespace.
const ServiceAccount = "runner"

// WriteServingCert writes a self-signed tls.crt and tls.key for 127.0.0.1
// into dir, as the endpoint's --output-cert-dir, and returns an HTTPS client
// that trusts it.
func WriteServingCert(dir string) (*http.Client, error) {
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, nil)
	if err != nil {
		return nil, fmt.Errorf("generating the endpoint's certificate: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		// Many uploads at once go to one address.
		MaxIdleConnsPerHost: 1024,
	}}, nil
}

// Pod is a pod of a run: owned by owner (a Job, as the Job controller makes
// them, or anything else a test needs), with the persister as a native
// sidecar running persisterImage and the given main containers.
func Pod(ns, name string, owner *metav1.OwnerReference, persisterImage string, containers ...string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: ServiceAccount,
			InitContainers: []corev1.Container{{Name: upload.PersisterContainerName, Image: persisterImage, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
		},
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
	}
	if owner != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*owner}
		if owner.Kind == "Job" {
			// The Job controller labels its pods with the Job's UID.
			pod.Labels = map[string]string{batchv1.ControllerUidLabel: string(owner.UID)}
		}
	}
	return pod
}

// JobPod is the pod the Job controller makes of job's template: its spec,
// labels and annotations, the Job's UID and name as labels, and the Job as
// controller. (Without the webhook: no persister.)
func JobPod(job *batchv1.Job, name string) *corev1.Pod {
	t := job.Spec.Template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: job.Namespace, Labels: t.Labels, Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: t.Spec,
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[batchv1.ControllerUidLabel], pod.Labels[batchv1.JobNameLabel] = string(job.UID), job.Name
	return pod
}

// SucceedJobPod creates the Job controller's pod of job (JobPod) and writes
// the status the kubelet writes when all its containers exited 0: a Job's
// completion is proven by its pods. The pod's service account (default
// "default") is created when missing: no controller manager does it here.
func SucceedJobPod(ctx context.Context, c client.Client, job *batchv1.Job, name string) error {
	pod := JobPod(job, name)
	if pod.Spec.ServiceAccountName == "" {
		// As the ServiceAccount admission does.
		pod.Spec.ServiceAccountName = "default"
	}
	account := pod.Spec.ServiceAccountName
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: account, Namespace: job.Namespace}}
	if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service account %s: %w", account, err)
	}
	if err := c.Create(ctx, pod); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating pod %s of Job %s: %w", name, job.Name, err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		return err
	}
	codes := map[string]int32{}
	for _, ctr := range pod.Spec.Containers {
		codes[ctr.Name] = 0
	}
	Exit(pod, codes)
	pod.Status.Phase = corev1.PodSucceeded
	return c.Status().Update(ctx, pod)
}

// Exit sets the pod's container statuses as the kubelet would: each
// container named in codes terminated with its code, the others running.
// The caller writes the pod's status.
func Exit(pod *corev1.Pod, codes map[string]int32) {
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		st := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		if code, ok := codes[c.Name]; ok {
			st.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: code, Reason: "Completed", FinishedAt: metav1.Now()}
		} else {
			st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.Now()}
		}
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, st)
	}
}

// Token requests a token of the given audience bound to the pod, as the
// kubelet does for the persister's projected volume.
func Token(ctx context.Context, clientset kubernetes.Interface, pod *corev1.Pod, audience string) (string, error) {
	tr, err := clientset.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			Audiences:         []string{audience},
			ExpirationSeconds: ptr.To[int64](600),
			BoundObjectRef:    &authnv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token bound to pod %s: %w", pod.Name, err)
	}
	return tr.Status.Token, nil
}

// Files builds an upload: container → file → content.
func Files(byContainer map[string]map[string]string) *upload.Request {
	req := &upload.Request{}
	for c, fs := range byContainer {
		uc := upload.Container{Name: c}
		for name, content := range fs {
			uc.Files = append(uc.Files, upload.File{Name: name, Content: []byte(content)})
		}
		req.Containers = append(req.Containers, uc)
	}
	return req
}

// Client sends uploads to an endpoint.
type Client struct {
	// URL is the endpoint's upload URL: https://<address> + upload.Path.
	URL  string
	HTTP *http.Client
	// Header is added to every request.
	Header http.Header
}

// Post sends one upload with the bearer token (none when empty) and returns
// the HTTP status and the answer.
func (c Client) Post(ctx context.Context, bearer string, req *upload.Request) (int, upload.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, upload.Response{}, err
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return 0, upload.Response{}, err
	}
	for name, values := range c.Header {
		httpReq.Header[name] = values
	}
	if bearer != "" {
		httpReq.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.HTTP.Do(httpReq)
	if err != nil {
		return 0, upload.Response{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	var answer upload.Response
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return resp.StatusCode, answer, fmt.Errorf("decoding the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	return resp.StatusCode, answer, nil
}

// Send uploads until the endpoint acknowledges the upload, as the
// persister does: a failed connection, a 429 or a 503 is tried again after a
// backoff that starts at 250 ms and doubles up to 4 s, at most 20 times. It
// returns the number of retries, and an error for any other answer than 200
// without problems, or for the last failure.
func (c Client) Send(ctx context.Context, bearer string, req *upload.Request) (int, error) {
	const maxRetries = 20
	backoff := 250 * time.Millisecond
	for retries := 0; ; retries++ {
		status, answer, err := c.Post(ctx, bearer, req)
		switch {
		case err == nil && status == http.StatusOK && len(answer.Problems) == 0:
			return retries, nil
		case err == nil && status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable:
			return retries, fmt.Errorf("the endpoint refused the upload: HTTP %d, problems %q", status, answer.Problems)
		case retries == maxRetries:
			if err == nil {
				err = fmt.Errorf("HTTP %d, problems %q", status, answer.Problems)
			}
			return retries, fmt.Errorf("the upload was not acknowledged after %d tries: %w", retries+1, err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 4*time.Second)
	}
}
