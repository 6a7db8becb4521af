package output

import (
	"encoding/json"
	"strings"
	"testing"

	"code.cloudfoundry.org/quarks-job/api/upload"
)

// FuzzCompute feeds arbitrary upload bodies, as the endpoint decodes them,
// to Compute: it must never panic, and it must only ever plan Secrets for
// files the spec declares, holding exactly what the file held.
func FuzzCompute(f *testing.F) {
	for _, seed := range []*upload.Request{req(allGood), req(with(allGood, "gen", "creds.json", `{"a":1}`)), req(with(allGood, "x", "y", `{}`)), {}} {
		body, _ := json.Marshal(seed)
		f.Add(body, int32(0))
	}
	f.Fuzz(func(t *testing.T, body []byte, exitCode int32) {
		var r upload.Request
		if json.Unmarshal(body, &r) != nil {
			return
		}
		s := spec(exitCode%2 == 0)
		plan := Compute(s, &r, exited(map[string]int32{"gen": exitCode, "fan": 0}), 0)
		for _, secret := range plan.Secrets {
			options, declared := s.OutputMap[secret.Container][secret.File]
			if !declared {
				t.Fatalf("planned Secret %q for undeclared file %q of container %q", secret.Name, secret.File, secret.Container)
			}
			if secret.Name != options.Name && !strings.HasPrefix(secret.Name, options.Name+"-") {
				t.Fatalf("Secret %q is not named after %q", secret.Name, options.Name)
			}
			if msg := checkSecret(secret); msg != "" {
				t.Fatalf("planned an invalid Secret: %s", msg)
			}
		}
		if len(plan.Secrets) > 0 && exitCode != 0 && !s.WriteOnFailure {
			for _, secret := range plan.Secrets {
				if secret.Container == "gen" {
					t.Fatalf("wrote output of a failed container without writeOnFailure")
				}
			}
		}
		for _, p := range plan.Problems {
			if p.Message == "" || p.Reason == "" {
				t.Fatalf("problem without message or reason: %+v", p)
			}
		}
	})
}
