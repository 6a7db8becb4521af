// Package certs keeps the webhook's CA and serving certificate, and the
// controller's output-endpoint certificate signed by the same CA, in
// Secrets; renews them before they expire; and patches the CA bundle into
// the webhook configurations. Several replicas share the Secrets: every
// write is a create (AlreadyExists: another replica won) or an update at the
// read resourceVersion (Conflict: read again).
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Keys of the Secrets.
const (
	CACertKey  = "ca.crt"
	CAKeyKey   = "ca.key"
	TLSCertKey = "tls.crt"
	TLSKeyKey  = "tls.key"
)

// backdate covers clock skew between the issuer and the verifiers.
const backdate = 5 * time.Minute

// authority is a CA that signs serving certificates.
type authority struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

func newAuthority(now time.Time, validity time.Duration) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("quarks-job-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, certPEM: encodeCert(der), keyPEM: keyPEM}, nil
}

// parseAuthority reads a CA from the first certificate of certPEM and keyPEM.
func parseAuthority(certPEM, keyPEM []byte) (*authority, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !certs[0].IsCA {
		return nil, errors.New("the first certificate is not a CA")
	}
	if !publicKeysEqual(certs[0].PublicKey, key.Public()) {
		return nil, errors.New("the CA key does not belong to the CA certificate")
	}
	return &authority{cert: certs[0], key: key, certPEM: encodeCert(certs[0].Raw), keyPEM: keyPEM}, nil
}

// issue signs a serving certificate for names (DNS names or IP addresses).
func (a *authority) issue(now time.Time, validity time.Duration, names []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, name := range names {
		if ip := net.ParseIP(name); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, name)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, a.cert, key.Public(), a.key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// renewalDue reports whether a certificate is in the last third of its
// lifetime (or expired): time to replace it while the old one still works.
func renewalDue(cert *x509.Certificate, now time.Time) bool {
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	return now.After(cert.NotAfter.Add(-lifetime / 3))
}

// servingCertProblem says why a serving certificate must be issued again, or
// "". A certificate signed by any still valid CA of the bundle is kept until
// its own renewal: when the CA is renewed, clients that hold only the earlier
// bundle (a persister injected before the renewal, whose pod still runs) go
// on trusting the endpoint, and the next renewal is signed by the new CA.
func servingCertProblem(certPEM, keyPEM, caBundle []byte, names []string, now time.Time) string {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return fmt.Sprintf("certificate unreadable: %v", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return fmt.Sprintf("key unreadable: %v", err)
	}
	cas, err := parseCerts(caBundle)
	if err != nil {
		return fmt.Sprintf("CA bundle unreadable: %v", err)
	}
	cert := certs[0]
	signed := slices.ContainsFunc(cas, func(ca *x509.Certificate) bool {
		return now.Before(ca.NotAfter) && cert.CheckSignatureFrom(ca) == nil
	})
	switch {
	case !publicKeysEqual(cert.PublicKey, key.Public()):
		return "key does not belong to the certificate"
	case !signed:
		return "not signed by a valid CA of the bundle"
	case !slices.Equal(certNames(cert), sortedNames(names)):
		return fmt.Sprintf("names %v differ from the wanted %v", certNames(cert), sortedNames(names))
	case renewalDue(cert, now):
		return fmt.Sprintf("expires %s", cert.NotAfter.Format(time.RFC3339))
	}
	return ""
}

func certNames(cert *x509.Certificate) []string {
	names := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	return sortedNames(names)
}

func sortedNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			n = ip.String()
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// bundle is the PEM of the current CA followed by the certificates of extra
// (earlier CAs) that are still valid at now, without duplicates.
func bundle(current []byte, now time.Time, extra ...[]byte) []byte {
	var out bytes.Buffer
	out.Write(current)
	seen := map[string]bool{}
	if certs, err := parseCerts(current); err == nil {
		for _, c := range certs {
			seen[string(c.Raw)] = true
		}
	}
	for _, e := range extra {
		certs, err := parseCerts(e)
		if err != nil {
			continue
		}
		for _, c := range certs {
			if seen[string(c.Raw)] || !now.Before(c.NotAfter) {
				continue
			}
			seen[string(c.Raw)] = true
			out.Write(encodeCert(c.Raw))
		}
	}
	return out.Bytes()
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if ec, ecErr := x509.ParseECPrivateKey(block.Bytes); ecErr == nil {
			return ec, nil
		}
		if rsa, rsaErr := x509.ParsePKCS1PrivateKey(block.Bytes); rsaErr == nil {
			return rsa, nil
		}
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
