//go:build e2e

package cluster_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The audience the persister's upload token carries (design.md §3).
const audience = "quarks-job"

func TestPodReachesAPIServerWithItsProjectedToken(t *testing.T) {
	t.Parallel()
	e := setUp(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "api-probe"},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(true),
			Containers:                   []corev1.Container{{Name: "probe", Image: probeImage()}},
		},
	}
	created, err := e.client.CoreV1().Pods(e.namespace).Create(e.ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := e.waitPod(pod.Name, corev1.PodSucceeded)
	logs := e.logs(pod.Name, "probe")

	service, err := e.client.CoreV1().Services("default").Get(e.ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "api server " + service.Spec.ClusterIP + ":443 answered"; !strings.Contains(logs, want) {
		t.Fatalf("probe output %q, want %q: the pod did not go through the kubernetes Service's ClusterIP", logs, want)
	}
	start := strings.Index(logs, "{")
	if start < 0 {
		t.Fatalf("probe output %q: no JSON answer", logs)
	}
	var review authenticationv1.SelfSubjectReview
	if err := json.Unmarshal([]byte(logs[start:]), &review); err != nil {
		t.Fatalf("probe output %q: %v", logs, err)
	}
	user := review.Status.UserInfo
	if want := "system:serviceaccount:" + e.namespace + ":default"; user.Username != want {
		t.Errorf("the API server saw the pod as %q, want %q", user.Username, want)
	}
	if got := user.Extra["authentication.kubernetes.io/pod-name"]; len(got) != 1 || got[0] != pod.Name {
		t.Errorf("pod-name in the projected token's identity = %v, want %s", got, pod.Name)
	}

	// A token for another audience, bound to the pod: what the persister
	// presents to the controller, which reviews it.
	request, err := e.client.CoreV1().ServiceAccounts(e.namespace).CreateToken(e.ctx, "default", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{audience},
			ExpirationSeconds: ptr.To[int64](600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: created.Name, UID: created.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request a pod-bound token: %v", err)
	}
	tokenReview, err := e.client.AuthenticationV1().TokenReviews().Create(e.ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: request.Status.Token, Audiences: []string{audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := tokenReview.Status
	if !status.Authenticated {
		t.Fatalf("token review: not authenticated: %s", status.Error)
	}
	if len(status.Audiences) != 1 || status.Audiences[0] != audience {
		t.Errorf("token review audiences %v, want [%s]", status.Audiences, audience)
	}
	for claim, want := range map[string]string{
		"authentication.kubernetes.io/pod-name": created.Name,
		"authentication.kubernetes.io/pod-uid":  string(created.UID),
	} {
		if got := status.User.Extra[claim]; len(got) != 1 || got[0] != want {
			t.Errorf("token review extra %s = %v, want %s", claim, got, want)
		}
	}
	if got := done.UID; got != created.UID {
		t.Errorf("pod uid changed: %s, created %s", got, created.UID)
	}

	// The same facts in the token's own bound-object claims.
	claims := jwtClaims(t, request.Status.Token)
	if claims.Kubernetes.Pod.Name != created.Name || claims.Kubernetes.Pod.UID != string(created.UID) {
		t.Errorf("token's kubernetes.io.pod claim = %+v, want %s/%s", claims.Kubernetes.Pod, created.Name, created.UID)
	}
	if len(claims.Audience) != 1 || claims.Audience[0] != audience {
		t.Errorf("token's aud claim = %v, want [%s]", claims.Audience, audience)
	}

	// A token for that audience is no API token.
	apiReview, err := e.client.AuthenticationV1().TokenReviews().Create(e.ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: request.Status.Token},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if apiReview.Status.Authenticated {
		t.Errorf("a token with audience %s authenticated against the API server's own audience", audience)
	}
}

type claims struct {
	Audience   []string `json:"aud"`
	Kubernetes struct {
		Pod struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"pod"`
	} `json:"kubernetes.io"`
}

func jwtClaims(t *testing.T, token string) claims {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("token payload %s: %v", payload, err)
	}
	return c
}
