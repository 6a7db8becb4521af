package certs

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

const (
	caValidity   = 300 * 24 * time.Hour
	certValidity = 30 * 24 * time.Hour
)

var (
	start        = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	webhookNames = []string{"quarks-job-webhook.quarks.svc", "127.0.0.1"}
)

func plan(t *testing.T, data map[string][]byte, now time.Time) (map[string][]byte, string) {
	t.Helper()
	want, reason, err := planWebhookSecret(data, webhookNames, caValidity, certValidity, now)
	if err != nil {
		t.Fatal(err)
	}
	return want, reason
}

// verify checks that the serving certificate in data is trusted by the
// bundle in data for name at now.
func verify(t *testing.T, data map[string][]byte, name string, now time.Time) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[CACertKey]) {
		t.Fatal("no CA in ca.crt")
	}
	certs, err := parseCerts(data[TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: now}); err != nil {
		t.Errorf("serving certificate not trusted for %s at %s: %v", name, now, err)
	}
}

func TestPlanWebhookSecret(t *testing.T) {
	fresh, reason := plan(t, nil, start)
	if reason == "" {
		t.Fatal("an empty Secret needs certificates")
	}
	verify(t, fresh, "quarks-job-webhook.quarks.svc", start)
	verify(t, fresh, "127.0.0.1", start)

	if _, reason := plan(t, fresh, start.Add(certValidity/2)); reason != "" {
		t.Errorf("valid certificates renewed at half their lifetime: %s", reason)
	}

	// In the last third of the serving certificate's lifetime: a new serving
	// certificate from the same CA.
	late := start.Add(certValidity * 3 / 4)
	renewed, reason := plan(t, fresh, late)
	if !strings.Contains(reason, "serving certificate: expires") {
		t.Errorf("reason = %q, want the serving certificate's expiry", reason)
	}
	if string(renewed[CAKeyKey]) != string(fresh[CAKeyKey]) || string(renewed[TLSCertKey]) == string(fresh[TLSCertKey]) {
		t.Error("want the same CA and a new serving certificate")
	}
	verify(t, renewed, "quarks-job-webhook.quarks.svc", late)

	// Other names: issued again.
	other, reason, err := planWebhookSecret(fresh, []string{"other.quarks.svc"}, caValidity, certValidity, start)
	if err != nil || !strings.Contains(reason, "names") {
		t.Errorf("reason, err = %q, %v; want the changed names", reason, err)
	}
	verify(t, other, "other.quarks.svc", start)
}

func TestPlanWebhookSecretRotatesTheCA(t *testing.T) {
	fresh, _ := plan(t, nil, start)
	late := start.Add(caValidity * 3 / 4)
	rotated, reason := plan(t, fresh, late)
	if !strings.Contains(reason, "CA expires") {
		t.Fatalf("reason = %q, want the CA's expiry", reason)
	}
	if string(rotated[CAKeyKey]) == string(fresh[CAKeyKey]) {
		t.Fatal("CA key kept")
	}
	bundle, err := parseCerts(rotated[CACertKey])
	if err != nil || len(bundle) != 2 {
		t.Fatalf("bundle holds %d certificates (%v), want the new and the old CA", len(bundle), err)
	}
	oldCA, _ := parseCerts(fresh[CACertKey])
	if !bundle[1].Equal(oldCA[0]) {
		t.Error("the old CA is not second in the bundle")
	}
	// A serving certificate of the old CA (held by a replica that has not
	// read the Secret yet) stays trusted.
	verify(t, map[string][]byte{CACertKey: rotated[CACertKey], TLSCertKey: fresh[TLSCertKey]}, "quarks-job-webhook.quarks.svc", start.Add(certValidity/2))
	verify(t, rotated, "quarks-job-webhook.quarks.svc", late)

	// Once the old CA expired it leaves the bundle.
	// (The serving certificate in rotated is the new CA's: the fresh one had expired.)
	pruned, reason := plan(t, rotated, start.Add(caValidity+time.Hour))
	if !strings.Contains(reason, "CA bundle changed") {
		t.Errorf("reason = %q, want the bundle pruned", reason)
	}
	if b, _ := parseCerts(pruned[CACertKey]); len(b) != 1 {
		t.Errorf("bundle holds %d certificates after the old CA expired, want 1", len(b))
	}
}

func TestPlanWebhookSecretRepairsBrokenData(t *testing.T) {
	fresh, _ := plan(t, nil, start)
	other, _ := plan(t, nil, start)
	for _, tc := range []struct {
		name   string
		data   map[string][]byte
		reason string
	}{
		{"CA key of another CA", map[string][]byte{CACertKey: fresh[CACertKey], CAKeyKey: other[CAKeyKey], TLSCertKey: fresh[TLSCertKey], TLSKeyKey: fresh[TLSKeyKey]}, "CA key does not belong"},
		{"serving certificate of another CA", map[string][]byte{CACertKey: fresh[CACertKey], CAKeyKey: fresh[CAKeyKey], TLSCertKey: other[TLSCertKey], TLSKeyKey: other[TLSKeyKey]}, "not signed by a valid CA of the bundle"},
		{"serving key of another certificate", map[string][]byte{CACertKey: fresh[CACertKey], CAKeyKey: fresh[CAKeyKey], TLSCertKey: fresh[TLSCertKey], TLSKeyKey: other[TLSKeyKey]}, "key does not belong"},
		{"garbage", map[string][]byte{CACertKey: []byte("x"), CAKeyKey: []byte("y")}, "no PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repaired, reason := plan(t, tc.data, start)
			if !strings.Contains(reason, tc.reason) {
				t.Errorf("reason = %q, want it to contain %q", reason, tc.reason)
			}
			verify(t, repaired, "quarks-job-webhook.quarks.svc", start)
			if _, again := plan(t, repaired, start); again != "" {
				t.Errorf("repaired data still needs a change: %s", again)
			}
		})
	}
}

func TestPlanServingSecretUsesTheSameCA(t *testing.T) {
	webhook, _ := plan(t, nil, start)
	ca, err := parseAuthority(webhook[CACertKey], webhook[CAKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"quarks-job-output.quarks.svc"}
	output, reason, err := planServingSecret(nil, ca, webhook[CACertKey], names, certValidity, start)
	if err != nil || reason == "" {
		t.Fatalf("reason, err = %q, %v; want new certificates", reason, err)
	}
	verify(t, output, "quarks-job-output.quarks.svc", start)
	if string(output[CACertKey]) != string(webhook[CACertKey]) {
		t.Error("the output Secret's ca.crt differs from the webhook's bundle")
	}
	if _, reason, _ := planServingSecret(output, ca, webhook[CACertKey], names, certValidity, start); reason != "" {
		t.Errorf("valid output certificate renewed: %s", reason)
	}
}

// TestCARenewalKeepsEarlierClients: a persister injected before the CA was
// renewed holds only the earlier bundle. Its pod may still run when the CA is
// renewed: the endpoint's certificate, signed by the earlier CA, is kept until
// its own renewal, so that persister's upload is still trusted; the next
// certificate is the new CA's.
func TestCARenewalKeepsEarlierClients(t *testing.T) {
	fresh, _ := plan(t, nil, start)
	caDue := start.Add(caValidity*2/3 + 24*time.Hour) // the CA's last third began yesterday
	// The serving certificate was last renewed shortly before.
	before, reason := plan(t, fresh, caDue.Add(-48*time.Hour))
	if !strings.Contains(reason, "serving certificate: expires") || strings.Contains(reason, "CA expires") {
		t.Fatalf("reason = %q, want only the serving certificate renewed", reason)
	}
	earlierBundle := before[CACertKey] // what a persister injected now holds

	rotated, reason := plan(t, before, caDue)
	if !strings.Contains(reason, "CA expires") || strings.Contains(reason, "serving certificate") {
		t.Fatalf("reason = %q, want the CA renewed and the serving certificate kept", reason)
	}
	if string(rotated[TLSCertKey]) != string(before[TLSCertKey]) {
		t.Fatal("the serving certificate was replaced with the CA")
	}
	verify(t, map[string][]byte{CACertKey: earlierBundle, TLSCertKey: rotated[TLSCertKey]}, "quarks-job-webhook.quarks.svc", caDue)
	verify(t, rotated, "quarks-job-webhook.quarks.svc", caDue) // and a persister injected after

	// Its own renewal is signed by the new CA, which every later bundle holds.
	renewal := caDue.Add(certValidity * 3 / 4)
	renewed, reason := plan(t, rotated, renewal)
	if !strings.Contains(reason, "serving certificate: expires") || strings.Contains(reason, "CA expires") {
		t.Fatalf("reason = %q, want the serving certificate renewed", reason)
	}
	newCA, _ := parseCerts(rotated[CACertKey])
	leaf, _ := parseCerts(renewed[TLSCertKey])
	if leaf[0].CheckSignatureFrom(newCA[0]) != nil {
		t.Error("the renewed serving certificate is not the new CA's")
	}
	verify(t, renewed, "quarks-job-webhook.quarks.svc", renewal)
}
