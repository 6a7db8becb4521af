package outputendpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/types"

	"code.cloudfoundry.org/quarks-job/api/upload"
)

// The claims a pod-bound service-account token carries, as TokenReview
// returns them in status.user.extra.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// httpError is a refusal with its status code.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func refuse(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// podRef is the pod a token is bound to.
type podRef struct {
	Namespace, Name string
	UID             types.UID
}

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// authenticate reviews the bearer token and returns the pod it is bound to.
// The pod comes from the token's bound-object claims only.
func (h *handler) authenticate(ctx context.Context, r *http.Request) (podRef, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return podRef{}, refuse(http.StatusUnauthorized, "a bearer token (the pod's projected service-account token, audience %s) is required", upload.Audience)
	}
	if !plausibleToken(token) {
		return podRef{}, refuse(http.StatusUnauthorized, "the bearer token is not a service-account token")
	}
	// A token seen recently is not reviewed again. Unknown tokens are
	// checked against the issuer's keys first (a made-up token costs no
	// review), then reviewed at a bounded rate charged to the namespace the
	// verified token names, or to the request's source address when the
	// keys cannot be read: one party's flood spends only its own budget.
	now := time.Now()
	if seen, ok := h.limits.cached(token, now); ok {
		tokenChecks.WithLabelValues("cached").Inc()
		return seen.ref, seen.err
	}
	// A token that is refused is charged to its source address: once the
	// address has spent its refusals, its refused requests are answered 429,
	// each held a while first. A token the issuer signed never is: pods
	// behind one address (a node that masquerades their traffic) may be the
	// attacker's and the victim's.
	address := sourceAddress(r)
	ref, err := h.verify(ctx, token, address, now)
	var he *httpError
	if errors.As(err, &he) && he.status == http.StatusUnauthorized && !h.limits.chargeRefusal(address) {
		tokenChecks.WithLabelValues("throttled").Inc()
		h.limits.tarpit(ctx, address)
		return podRef{}, refuse(http.StatusTooManyRequests, "too many refused uploads from address %s; try again", address)
	}
	return ref, err
}

// verify checks token against the issuer's keys, then reviews it, charging
// the review to the namespace the verified token names, or to the source
// address when the keys cannot be read.
func (h *handler) verify(ctx context.Context, token, address string, now time.Time) (podRef, error) {
	verified, err := h.issuer.namespace(ctx, token, now)
	who, outcome := "namespace "+verified, "reviewed-namespace"
	switch {
	case errors.Is(err, errNoKeys):
		who, outcome = "address "+address, "reviewed-address"
		h.log.V(1).Info("charging a token review to its source address", "address", who, "reason", err.Error())
	case err != nil:
		tokenChecks.WithLabelValues("not-issued").Inc()
		return podRef{}, err
	}
	if err := h.limits.awaitReview(ctx, who); err != nil {
		tokenChecks.WithLabelValues("throttled").Inc()
		return podRef{}, err
	}
	tokenChecks.WithLabelValues(outcome).Inc()
	ref, err := h.review(ctx, token)
	if err == nil && verified != "" && ref.Namespace != verified {
		err = refuse(http.StatusUnauthorized, "token not accepted: it names namespace %s, its review %s", verified, ref.Namespace)
	}
	var he *httpError
	if err == nil || (errors.As(err, &he) && he.status != http.StatusServiceUnavailable) {
		h.limits.remember(token, ref, err, now)
	}
	return ref, err
}

// review asks the API server who token is.
func (h *handler) review(ctx context.Context, token string) (podRef, error) {
	review := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{upload.Audience}}}
	if err := h.client.Create(ctx, review); err != nil {
		return podRef{}, refuse(http.StatusServiceUnavailable, "reviewing the token: %v", err)
	}
	st := review.Status
	if !st.Authenticated {
		return podRef{}, refuse(http.StatusUnauthorized, "token not accepted: %s", orDefault(st.Error, "not authenticated"))
	}
	if !slices.Contains(st.Audiences, upload.Audience) {
		return podRef{}, refuse(http.StatusUnauthorized, "token is not for audience %q (it is for %q)", upload.Audience, st.Audiences)
	}
	namespace, ok := serviceAccountNamespace(st.User.Username)
	if !ok {
		return podRef{}, refuse(http.StatusForbidden, "token of %q is not a service-account token", st.User.Username)
	}
	names, uids := st.User.Extra[extraPodName], st.User.Extra[extraPodUID]
	if len(names) != 1 || len(uids) != 1 || names[0] == "" || uids[0] == "" {
		return podRef{}, refuse(http.StatusForbidden, "token of %q is not bound to a pod", st.User.Username)
	}
	return podRef{Namespace: namespace, Name: names[0], UID: types.UID(uids[0])}, nil
}

// sourceAddress is the request's peer address without its port: a pod's IP,
// which the request cannot choose.
func sourceAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// serviceAccountNamespace reads the namespace from "system:serviceaccount:<ns>:<name>".
func serviceAccountNamespace(username string) (string, bool) {
	parts := strings.Split(username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" || parts[2] == "" {
		return "", false
	}
	return parts[2], true
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get
// +kubebuilder:rbac:groups=quarks.cloudfoundry.org,resources=quarksjobs,verbs=get
