package inject

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func TestHandler(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		pod         *corev1.Pod
		caBundle    []byte
		wantAllowed bool
		wantPatches bool
		wantCode    int32
		outcome     string
	}{
		{"output declared", jobPod(`{"gen":["a.json"]}`, "gen"), testCA, true, true, http.StatusOK, "injected"},
		{"no output declared", jobPod("", "gen"), testCA, true, false, http.StatusOK, "no_output"},
		{"no CA bundle yet", jobPod(`{"gen":["a.json"]}`, "gen"), nil, false, false, http.StatusServiceUnavailable, "error"},
		{"bad declaration", jobPod(`{"gen":["../a"]}`, "gen"), testCA, false, false, http.StatusForbidden, "denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			h := &Handler{Config: testConfig(), CABundle: func() []byte { return tc.caBundle }, Decoder: admission.NewDecoder(scheme)}
			before := testutil.ToFloat64(admitted.WithLabelValues(tc.outcome))
			resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
			}})
			if resp.Allowed != tc.wantAllowed || (len(resp.Patches) > 0) != tc.wantPatches {
				t.Errorf("allowed %v with %d patches (%v); want allowed %v, patches %v", resp.Allowed, len(resp.Patches), resp.Result, tc.wantAllowed, tc.wantPatches)
			}
			if resp.Result != nil && resp.Result.Code != tc.wantCode {
				t.Errorf("code = %d, want %d (%s)", resp.Result.Code, tc.wantCode, resp.Result.Message)
			}
			if got := testutil.ToFloat64(admitted.WithLabelValues(tc.outcome)) - before; got != 1 {
				t.Errorf("outcome %s counted %v times, want 1", tc.outcome, got)
			}
		})
	}
}
