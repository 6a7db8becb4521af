// Command probe runs in a test pod: it calls the API server through the
// kubernetes Service with the pod's projected service-account token and
// prints who the API server says the pod is (a SelfSubjectReview). busybox
// cannot do this: its TLS client is refused by Go servers.
//
// "probe flood URL COUNT [DURATION]" instead plays an attacker against the
// output endpoint: COUNT uploads (or as many as DURATION allows) with made-up
// bearer tokens, 16 at a time, and a
// line with how many got each status and how long it took. The tokens look
// like service-account tokens (a JWS whose header names ES256 and, every
// other one, a key ID of its own; claims of the namespace "default" and the
// endpoint's audience), so only their signatures give them away.
//
// "probe upload URL TOKEN CONTAINER FILE CONTENT" plays a tenant that stole
// a token: one upload of FILE with CONTENT for CONTAINER, with TOKEN as the
// bearer token, printing the status and the answer.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if (len(os.Args) == 4 || len(os.Args) == 5) && os.Args[1] == "flood" {
		if err := flood(os.Args[2], os.Args[3], os.Args[4:]...); err != nil {
			fmt.Fprintln(os.Stderr, "probe flood:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 7 && os.Args[1] == "upload" {
		if err := uploadAs(os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]); err != nil {
			fmt.Fprintln(os.Stderr, "probe upload:", err)
			os.Exit(1)
		}
		return
	}
	if err := selfSubjectReview(); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func selfSubjectReview() error {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return fmt.Errorf("KUBERNETES_SERVICE_HOST and _PORT are not set")
	}
	token, err := os.ReadFile(serviceAccountDir + "/token")
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no certificate in %s/ca.crt", serviceAccountDir)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "kubernetes.default.svc"},
	}}
	url := "https://" + net.JoinHostPort(host, port) + "/apis/authentication.k8s.io/v1/selfsubjectreviews"
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, answer)
	}
	fmt.Printf("api server %s answered: %s\n", net.JoinHostPort(host, port), answer)
	return nil
}

// flood sends count uploads with made-up tokens to url and prints the
// statuses it got. It is bounded in count and in time (each request 10 s).
func flood(url, countArg string, durationArg ...string) error {
	count, err := strconv.Atoi(countArg)
	if err != nil || count < 1 || count > 10_000_000 {
		return fmt.Errorf("count %q: want 1..10000000", countArg)
	}
	var until time.Time
	if len(durationArg) == 1 {
		d, err := time.ParseDuration(durationArg[0])
		if err != nil || d <= 0 {
			return fmt.Errorf("duration %q: want a positive duration", durationArg[0])
		}
		until = time.Now().Add(d)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// The attacker does not care whom it talks to.
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // an attacker's client
		MaxIdleConnsPerHost: 16,
	}}
	body := bytes.Repeat([]byte("x"), 64<<10)
	var mu sync.Mutex
	statuses := map[string]int{}
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					continue
				}
				req.Header.Set("Authorization", "Bearer "+madeUpToken(i))
				status := "error"
				if resp, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					status = strconv.Itoa(resp.StatusCode)
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		}()
	}
	sent := 0
	for ; sent < count && (until.IsZero() || time.Now().Before(until)); sent++ {
		next <- sent
	}
	close(next)
	wg.Wait()
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	took := time.Since(start)
	fmt.Printf("flood: %d requests in %s (%.0f/s);", sent, took.Round(time.Millisecond), float64(sent)/took.Seconds())
	for _, k := range keys {
		fmt.Printf(" %s=%d", k, statuses[k])
	}
	fmt.Println()
	return nil
}

// uploadAs sends one upload, as the persister would, with a token of the
// caller's and prints "upload: <status>: <answer>". The JSON is the
// persister's message (api/upload/protocol), written out here so the probe
// stays dependency-free.
func uploadAs(url, token, container, file, content string) error {
	body, err := json.Marshal(map[string]any{"containers": []any{map[string]any{
		"name": container, "files": []any{map[string]any{"name": file, "content": []byte(content)}}}}})
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // an attacker's client
	}}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	fmt.Printf("upload: %d: %s\n", resp.StatusCode, bytes.TrimSpace(answer))
	return nil
}

// madeUpToken is the i-th token of the flood.
func madeUpToken(i int) string {
	header := `{"alg":"ES256","typ":"JWT"}`
	if i%2 == 1 {
		header = fmt.Sprintf(`{"alg":"ES256","kid":"made-up-%d"}`, i)
	}
	now := time.Now().Unix()
	claims := fmt.Sprintf(`{"aud":["quarks-job"],"exp":%d,"iat":%d,"nbf":%d,"sub":"system:serviceaccount:default:default","kubernetes.io":{"namespace":"default","pod":{"name":"p%d","uid":"u%d"}}}`,
		now+3600, now, now, i, i)
	signature := make([]byte, 64)
	_, _ = rand.Read(signature)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims)) + "." + enc.EncodeToString(signature)
}
