package outputendpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"code.cloudfoundry.org/quarks-job/api/upload"
)

// issuer checks service-account tokens against the public keys the API
// server publishes at /openid/v1/jwks (every service account may read them:
// the default ClusterRole system:service-account-issuer-discovery). A token
// it refuses costs no TokenReview and no one's budget; a token it verifies
// names its namespace, which no one else can claim, and is charged to that
// namespace's budget. The TokenReview stays the final word on every token.
type issuer struct {
	fetch func(context.Context) ([]byte, error)
	log   logr.Logger

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time // of the last try, successful or not
}

// issuerKeysPath is where the API server publishes the issuer's keys.
const issuerKeysPath = "/openid/v1/jwks"

// newIssuer reads the issuer's keys from the API server of cfg.
func newIssuer(cfg *rest.Config, httpClient *http.Client, log logr.Logger) (*issuer, error) {
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return &issuer{log: log, fetch: func(ctx context.Context) ([]byte, error) {
		return dc.RESTClient().Get().AbsPath(issuerKeysPath).DoRaw(ctx)
	}}, nil
}

// refetchAfter is how soon an unknown key ID makes the key set be fetched
// again (the issuer rotated its keys); made-up key IDs cost one fetch per
// this interval at most.
const refetchAfter = 30 * time.Second

// fetchTimeout bounds a fetch of the key set; uploads wait for it.
const fetchTimeout = 5 * time.Second

// signingAlgorithms are the algorithms the API server signs tokens with.
var signingAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
}

// tokenClaims are the claims of a pod-bound service-account token.
type tokenClaims struct {
	jwt.Claims
	Kubernetes struct {
		Namespace string `json:"namespace"`
	} `json:"kubernetes.io"`
}

// errNoKeys: the issuer's keys could not be read; the caller charges the
// request to its source address instead.
var errNoKeys = errors.New("the service-account issuer's keys are not available")

// namespace verifies token's signature, audience and time, and returns the
// namespace it was issued in. errNoKeys when the keys cannot be read; a
// refusal (401) when the token is not the issuer's.
func (k *issuer) namespace(ctx context.Context, token string, now time.Time) (string, error) {
	parsed, err := jwt.ParseSigned(token, signingAlgorithms)
	if err != nil || len(parsed.Headers) != 1 {
		return "", refuse(http.StatusUnauthorized, "token not accepted: it is not a signed JWT")
	}
	keys, err := k.keysFor(ctx, parsed.Headers[0].KeyID, now)
	if err != nil {
		return "", err
	}
	var claims tokenClaims
	verified := slices.ContainsFunc(keys, func(key jose.JSONWebKey) bool { return parsed.Claims(key.Key, &claims) == nil })
	if !verified {
		return "", refuse(http.StatusUnauthorized, "token not accepted: it is not signed by the cluster's service-account issuer")
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{AnyAudience: jwt.Audience{upload.Audience}, Time: now}, jwt.DefaultLeeway); err != nil {
		return "", refuse(http.StatusUnauthorized, "token not accepted: %v", err)
	}
	if claims.Kubernetes.Namespace == "" {
		return "", refuse(http.StatusUnauthorized, "token not accepted: it names no namespace")
	}
	return claims.Kubernetes.Namespace, nil
}

// keysFor returns the keys that may have signed a token with key ID kid,
// fetching the key set when it is not known or does not hold kid (at most
// once per refetchAfter).
func (k *issuer) keysFor(ctx context.Context, kid string, now time.Time) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	known := func() []jose.JSONWebKey {
		if k.keys == nil {
			return nil
		}
		if kid == "" {
			return k.keys.Keys
		}
		return k.keys.Key(kid)
	}
	recent := !k.fetched.IsZero() && now.Sub(k.fetched) < refetchAfter
	switch keys := known(); {
	case len(keys) > 0 || (k.keys != nil && recent):
		return keys, nil
	case recent:
		return nil, errNoKeys
	}
	k.fetched = now
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	raw, err := k.fetch(ctx)
	if err == nil {
		set := &jose.JSONWebKeySet{}
		if err = json.Unmarshal(raw, set); err == nil && len(set.Keys) == 0 {
			err = errors.New("the key set is empty")
		}
		if err == nil {
			k.keys = set
			k.log.V(1).Info("read the service-account issuer's keys", "keys", len(set.Keys))
			return known(), nil
		}
	}
	if k.keys != nil {
		// Keep the keys known: a token of a key not among them is refused.
		k.log.Info("could not read the service-account issuer's keys again; keeping those read before", "path", issuerKeysPath, "error", err.Error())
		return known(), nil
	}
	k.log.Info("could not read the service-account issuer's keys; reviews are charged to source addresses until they are", "path", issuerKeysPath, "error", err.Error())
	return nil, fmt.Errorf("%w: %w", errNoKeys, err)
}
