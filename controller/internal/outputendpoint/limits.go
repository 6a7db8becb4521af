package outputendpoint

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// Limits bound what hostile or runaway uploads can cost the controller.
type Limits struct {
	// MaxBytesInFlight bounds the upload bodies held in memory at once; an
	// upload waits for room (up to BusyWait) or is answered 503, and the
	// persister retries. At least one maximal upload always fits.
	MaxBytesInFlight int64
	// BusyWait is how long an upload waits for room before a 503.
	BusyWait time.Duration
	// TokenReviewsPerSecond bounds the TokenReviews spent on tokens the
	// endpoint has not seen, per namespace (the one a token's verified
	// signature names) or, when the issuer's keys cannot be read, per source
	// address; beyond it, unknown tokens wait up to BusyWait, then are
	// answered 429.
	TokenReviewsPerSecond float64
	// TokenReviewBurst is the burst of TokenReviews allowed per namespace
	// or address.
	TokenReviewBurst int
	// SecretWritesPerSecond bounds the output Secrets written per second
	// for the uploads of one namespace, with a burst of twice as many: one
	// namespace's large fan-outs wait for its own share, not for others'.
	// Default DefaultSecretWritesPerSecond.
	SecretWritesPerSecond float64
	// MaxSecretsPerUpload bounds the Secrets one upload may make (a fan-out
	// makes one per key); beyond it the file that crosses it is refused with
	// a message on the run (output.Compute). Default output.DefaultMaxSecrets.
	MaxSecretsPerUpload int
}

// Default limits.
const (
	DefaultMaxBytesInFlight      = 2 * maxBodyBytes
	DefaultBusyWait              = 5 * time.Second
	DefaultTokenReviewsPerSecond = 50
	DefaultTokenReviewBurst      = 100
	DefaultSecretWritesPerSecond = 500
	// reviewedTTL is how long a token's review is reused: a pod-bound token
	// stays valid for its pod's life, and every upload reads the pod again.
	reviewedTTL = time.Minute
	// refusedTTL is how long a refused token is refused without a review.
	refusedTTL = 30 * time.Second
	// maxCachedTokens bounds the review cache.
	maxCachedTokens = 4096
	// maxTokenBytes is more than any service-account token is.
	maxTokenBytes = 16 << 10
)

type limits struct {
	bytes      *semaphore.Weighted
	maxBytes   int64
	maxSecrets int
	busyWait   time.Duration

	reviewRate  rate.Limit
	reviewBurst int
	writeRate   rate.Limit
	// anonymousLog bounds the log lines of refusals before a pod is known.
	anonymousLog *rate.Limiter

	mu      sync.Mutex
	tokens  map[[32]byte]reviewed
	budgets map[string]*rate.Limiter // by namespace or source address
	// tarpitted counts the requests held by tarpit, by address, each for
	// tarpitDelay.
	tarpitted   map[string]int
	tarpitDelay time.Duration
}

// maxBudgets bounds the budgets kept; idle ones are dropped first.
const maxBudgets = 4096

type reviewed struct {
	ref     podRef
	err     error
	expires time.Time
}

func newLimits(l Limits) *limits {
	if l.MaxBytesInFlight < maxBodyBytes {
		l.MaxBytesInFlight = max(DefaultMaxBytesInFlight, maxBodyBytes)
	}
	if l.BusyWait <= 0 {
		l.BusyWait = DefaultBusyWait
	}
	if l.TokenReviewsPerSecond <= 0 {
		l.TokenReviewsPerSecond = DefaultTokenReviewsPerSecond
	}
	if l.TokenReviewBurst <= 0 {
		l.TokenReviewBurst = DefaultTokenReviewBurst
	}
	if l.SecretWritesPerSecond <= 0 {
		l.SecretWritesPerSecond = DefaultSecretWritesPerSecond
	}
	return &limits{
		bytes: semaphore.NewWeighted(l.MaxBytesInFlight), maxBytes: l.MaxBytesInFlight, busyWait: l.BusyWait,
		maxSecrets: l.MaxSecretsPerUpload,
		reviewRate: rate.Limit(l.TokenReviewsPerSecond), reviewBurst: l.TokenReviewBurst,
		writeRate: rate.Limit(l.SecretWritesPerSecond),
		tokens:    map[[32]byte]reviewed{}, budgets: map[string]*rate.Limiter{}, tarpitted: map[string]int{}, tarpitDelay: tarpitDelay,
		anonymousLog: rate.NewLimiter(1, 10),
	}
}

// admitBody reserves room for a request body of the announced length (the
// most a body may be when none is announced) and returns its release.
func (l *limits) admitBody(ctx context.Context, r *http.Request) (release func(), err error) {
	weight := int64(maxBodyBytes)
	if r.ContentLength > 0 && r.ContentLength < weight {
		weight = r.ContentLength
	}
	wait, cancel := context.WithTimeout(ctx, l.busyWait)
	defer cancel()
	if err := l.bytes.Acquire(wait, weight); err != nil {
		return nil, refuse(http.StatusServiceUnavailable, "the output endpoint is busy with other uploads; try again")
	}
	return func() { l.bytes.Release(weight) }, nil
}

// awaitReview waits for the TokenReview budget of who (a namespace or a
// source address) to allow one more, at most busyWait; then the upload is
// answered 429 and the persister retries. One party's flood spends only its
// own budget.
func (l *limits) awaitReview(ctx context.Context, who string) error {
	wait, cancel := context.WithTimeout(ctx, l.busyWait)
	defer cancel()
	if err := l.budget(who, l.reviewRate, l.reviewBurst).Wait(wait); err != nil {
		return refuse(http.StatusTooManyRequests, "too many uploads with tokens not seen before from %s; try again", who)
	}
	return nil
}

// writes is the budget of output Secret writes of namespace's uploads.
func (l *limits) writes(namespace string) *rate.Limiter {
	return l.budget("secret writes in namespace "+namespace, l.writeRate, max(1, int(2*l.writeRate)))
}

// tarpit holds a request of a throttled address for l.tarpitDelay before it
// is answered, at most maxTarpitted at once per address: a client that
// ignores Retry-After sends at the pace of its connections, not of the
// controller's answers. Beyond that, it is answered at once.
func (l *limits) tarpit(ctx context.Context, address string) {
	l.mu.Lock()
	if l.tarpitted[address] >= maxTarpitted {
		l.mu.Unlock()
		return
	}
	l.tarpitted[address]++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.tarpitted[address]--; l.tarpitted[address] == 0 {
			delete(l.tarpitted, address)
		}
		l.mu.Unlock()
	}()
	t := time.NewTimer(l.tarpitDelay)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// The tarpit's bounds.
const (
	tarpitDelay  = time.Second
	maxTarpitted = 32
)

// chargeRefusal spends one of address's refused requests (refusalsPerSecond,
// refusalBurst), false when it has none left: a pod that keeps sending tokens
// no one issued is slowed down.
func (l *limits) chargeRefusal(address string) bool {
	return l.budget(refusalsFrom+address, refusalsPerSecond, refusalBurst).Allow()
}

// An address's budget of refused requests: a pod's own token is refused
// only while it is not yet valid or its pod is gone, a few times at most.
const (
	refusalsFrom      = "refusals from address "
	refusalsPerSecond = 5
	refusalBurst      = 50
)

// budget returns who's budget, made with rate r and burst when new. When
// maxBudgets are kept, the idle ones (full again) are dropped; a budget in
// use is never reset.
func (l *limits) budget(who string, r rate.Limit, burst int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.budgets[who]; ok {
		return b
	}
	if len(l.budgets) >= maxBudgets {
		for k, b := range l.budgets {
			if b.Tokens() >= float64(b.Burst()) {
				delete(l.budgets, k)
			}
		}
	}
	b := rate.NewLimiter(r, burst)
	l.budgets[who] = b
	return b
}

// plausibleToken refuses, without a TokenReview, what cannot be a
// service-account token (a JWT: three base64url parts).
func plausibleToken(token string) bool {
	return len(token) <= maxTokenBytes && strings.Count(token, ".") == 2
}

// cached returns the earlier review of token, if still fresh.
func (l *limits) cached(token string, now time.Time) (reviewed, bool) {
	key := sha256.Sum256([]byte(token))
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.tokens[key]
	if !ok || now.After(r.expires) {
		return reviewed{}, false
	}
	return r, true
}

// remember caches a review: an accepted token for reviewedTTL, a refused
// one for refusedTTL. Reviews that failed for want of the API server are
// not cached.
func (l *limits) remember(token string, ref podRef, err error, now time.Time) {
	ttl := reviewedTTL
	if err != nil {
		ttl = refusedTTL
	}
	key := sha256.Sum256([]byte(token))
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tokens) >= maxCachedTokens {
		for k, r := range l.tokens {
			if now.After(r.expires) {
				delete(l.tokens, k)
			}
		}
		if len(l.tokens) >= maxCachedTokens {
			clear(l.tokens)
		}
	}
	l.tokens[key] = reviewed{ref: ref, err: err, expires: now.Add(ttl)}
}
