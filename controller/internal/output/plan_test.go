package output

import (
	"slices"
	"strings"
	"testing"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

func spec(writeOnFailure bool) *qjv1.Output {
	return &qjv1.Output{
		WriteOnFailure: writeOnFailure,
		SecretLabels:   map[string]string{"team": "a", "shared": "output"},
		OutputMap: qjv1.OutputMap{
			"gen": {
				"creds.json": {Name: "creds", AdditionalSecretLabels: map[string]string{"shared": "file"}, AdditionalSecretAnnotations: map[string]string{"note": "x"}},
				"ver.json":   {Name: "ver", Versioned: true},
			},
			"fan": {
				"many.json": {Name: "many", PersistenceMethod: qjv1.PersistFanOut},
			},
		},
	}
}

func exited(codes map[string]int32) map[string]ContainerState {
	states := map[string]ContainerState{}
	for c, code := range codes {
		states[c] = ContainerState{InPod: true, Terminated: true, ExitCode: code}
	}
	return states
}

func req(files map[string]map[string]string) *upload.Request {
	r := &upload.Request{}
	for c, fs := range files {
		uc := upload.Container{Name: c}
		for name, content := range fs {
			uc.Files = append(uc.Files, upload.File{Name: name, Content: []byte(content)})
		}
		r.Containers = append(r.Containers, uc)
	}
	return r
}

var allGood = map[string]map[string]string{
	"gen": {"creds.json": `{"user":"u","password":"p"}`, "ver.json": `{"v":"1"}`},
	"fan": {"many.json": `{"db":"{\"user\":\"d\"}","cache":"{\"url\":\"c\"}","token":"t0k"}`},
}

func TestComputeWritesDeclaredFiles(t *testing.T) {
	plan := Compute(spec(false), req(allGood), exited(map[string]int32{"gen": 0, "fan": 0}), 0)
	if len(plan.Problems) != 0 {
		t.Fatalf("unexpected problems: %+v", plan.Problems)
	}
	byName := map[string]Secret{}
	for _, s := range plan.Secrets {
		byName[s.Name] = s
	}
	if len(byName) != 5 {
		t.Fatalf("want 5 secrets, got %v", names(plan.Secrets))
	}
	if string(byName["many-token"].Data[FanOutValueKey]) != "t0k" {
		t.Errorf("fan-out of a plain string: %v", byName["many-token"].Data)
	}
	creds := byName["creds"]
	if string(creds.Data["password"]) != "p" || creds.Versioned {
		t.Errorf("creds: %+v", creds)
	}
	want := map[string]string{"team": "a", "shared": "file", qjv1.LabelPersistentSecretContainer: "gen"}
	for k, v := range want {
		if creds.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, creds.Labels[k], v)
		}
	}
	if creds.Annotations["note"] != "x" {
		t.Errorf("annotations: %v", creds.Annotations)
	}
	if !byName["ver"].Versioned {
		t.Error("ver must be versioned")
	}
	if string(byName["many-db"].Data["user"]) != "d" || string(byName["many-cache"].Data["url"]) != "c" {
		t.Errorf("fan-out: %+v", byName)
	}
	if byName["many-db"].Labels[qjv1.LabelPersistentSecretContainer] != "fan" {
		t.Errorf("fan-out labels: %v", byName["many-db"].Labels)
	}
}

func TestFanOutData(t *testing.T) {
	tests := []struct {
		value string
		want  map[string]string
	}{
		{"s3cret", map[string]string{"value": "s3cret"}},
		{`{"user":"d","password":"p"}`, map[string]string{"user": "d", "password": "p"}}, // as the original
		{` {"user":"d"} `, map[string]string{"user": "d"}},
		{`{"port":1}`, map[string]string{"value": `{"port":1}`}}, // not an object of strings: kept whole
		{`{not json`, map[string]string{"value": `{not json`}},
		{"", map[string]string{"value": ""}},
	}
	for _, tt := range tests {
		got := fanOutData(tt.value)
		if len(got) != len(tt.want) {
			t.Errorf("fanOutData(%q) = %v, want %v", tt.value, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if string(got[k]) != v {
				t.Errorf("fanOutData(%q)[%q] = %q, want %q", tt.value, k, got[k], v)
			}
		}
	}
}

func TestComputeProblems(t *testing.T) {
	tests := []struct {
		name           string
		writeOnFailure bool
		files          map[string]map[string]string
		codes          map[string]int32
		states         map[string]ContainerState
		wantBlocked    bool
		wantSecrets    []string
		wantMessages   []string
	}{
		{
			name:  "number value names file and key",
			files: with(allGood, "gen", "creds.json", `{"port":8080}`), codes: ok2,
			wantBlocked: true, wantSecrets: []string{"ver", "many-cache", "many-db", "many-token"},
			wantMessages: []string{`output file "creds.json" of container "gen": value of key "port" is a number; only strings are allowed`},
		},
		{
			name:  "nested object",
			files: with(allGood, "gen", "creds.json", `{"db":{"a":"b"}}`), codes: ok2,
			wantBlocked: true, wantMessages: []string{`key "db" is a nested object`},
		},
		{
			name:  "invalid JSON",
			files: with(allGood, "gen", "ver.json", `{"v":`), codes: ok2,
			wantBlocked: true, wantMessages: []string{`output file "ver.json" of container "gen" is not valid JSON`},
		},
		{
			name:  "too large",
			files: with(allGood, "gen", "ver.json", `{"v":"`+strings.Repeat("x", upload.MaxFileBytes)+`"}`), codes: ok2,
			wantBlocked: true, wantMessages: []string{`output file "ver.json" of container "gen" is 1048584 bytes`},
		},
		{
			name:  "declared file never written",
			files: without(allGood, "gen", "ver.json"), codes: ok2,
			wantBlocked: true, wantSecrets: []string{"creds", "many-cache", "many-db", "many-token"},
			wantMessages: []string{`output file "ver.json" of container "gen" was not written (container exited with code 0)`},
		},
		{
			name:  "failed container without writeOnFailure: output not expected, not blocking",
			files: allGood, codes: map[string]int32{"gen": 3, "fan": 0},
			wantSecrets:  []string{"many-cache", "many-db", "many-token"},
			wantMessages: []string{`container "gen" exited with code 3; its output files "creds.json", "ver.json" are not persisted because output.writeOnFailure is off`},
		},
		{
			name: "failed container with writeOnFailure writes its output", writeOnFailure: true,
			files: allGood, codes: map[string]int32{"gen": 1, "fan": 0},
			wantSecrets: []string{"creds", "ver", "many-cache", "many-db", "many-token"},
		},
		{
			name: "crashed before writing, writeOnFailure: blocking", writeOnFailure: true,
			files: without(allGood, "gen", "creds.json"), codes: map[string]int32{"gen": 137, "fan": 0},
			wantBlocked: true, wantMessages: []string{`container "gen" exited with code 137 before writing output file "creds.json"`},
		},
		{
			name:  "exit code unknown",
			files: allGood, states: map[string]ContainerState{"gen": {InPod: true}, "fan": {InPod: true, Terminated: true}},
			wantBlocked: true, wantSecrets: []string{"many-cache", "many-db", "many-token"},
			wantMessages: []string{`the kubelet has not reported the exit code of container "gen"`},
		},
		{
			name:  "declared container not in pod",
			files: allGood, states: map[string]ContainerState{"fan": {InPod: true, Terminated: true}},
			wantBlocked: true, wantMessages: []string{`container "gen" is declared in output.outputMap but the pod has no such container`},
		},
		{
			name:  "undeclared file is ignored, not blocking",
			files: with(allGood, "gen", "extra.json", `{"a":"b"}`), codes: ok2,
			wantSecrets:  []string{"creds", "ver", "many-cache", "many-db", "many-token"},
			wantMessages: []string{`ignored output file "extra.json" of container "gen": the run's output spec does not declare it`},
		},
		{
			name:  "undeclared container is ignored",
			files: with(allGood, "other", "creds.json", `{"a":"b"}`), codes: ok2,
			wantSecrets:  []string{"creds", "ver", "many-cache", "many-db", "many-token"},
			wantMessages: []string{`ignored output file "creds.json" of container "other"`},
		},
		{
			name:  "fan-out key that makes an invalid Secret name",
			files: with(allGood, "fan", "many.json", `{"Bad_Key":"{}"}`), codes: ok2,
			wantBlocked: true, wantMessages: []string{`key "Bad_Key": "many-Bad_Key" is not a valid Secret name`},
		},
		{
			name:  "data key not allowed in a Secret",
			files: with(allGood, "gen", "creds.json", `{"a b":"c"}`), codes: ok2,
			wantBlocked: true, wantMessages: []string{`key "a b" cannot be a Secret data key`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			states := tt.states
			if states == nil {
				states = exited(tt.codes)
			}
			plan := Compute(spec(tt.writeOnFailure), req(tt.files), states, 0)
			if plan.Blocked() != tt.wantBlocked {
				t.Errorf("Blocked() = %v, want %v; problems %+v", plan.Blocked(), tt.wantBlocked, plan.Problems)
			}
			if tt.wantSecrets != nil && !sameSet(names(plan.Secrets), tt.wantSecrets) {
				t.Errorf("secrets %v, want %v", names(plan.Secrets), tt.wantSecrets)
			}
			var all []string
			for _, p := range plan.Problems {
				all = append(all, p.Message)
			}
			for _, want := range tt.wantMessages {
				if !strings.Contains(strings.Join(all, "\n"), want) {
					t.Errorf("problems %q do not mention %q", all, want)
				}
			}
			if len(tt.wantMessages) == 0 && len(all) != 0 {
				t.Errorf("unexpected problems %q", all)
			}
		})
	}
}

func TestContainersAwaitingExit(t *testing.T) {
	states := map[string]ContainerState{"gen": {InPod: true}, "fan": {InPod: true, Terminated: true}}
	if got := ContainersAwaitingExit(spec(false), states); len(got) != 1 || got[0] != "gen" {
		t.Fatalf("got %v", got)
	}
}

func TestVersionedNameTooLong(t *testing.T) {
	s := &qjv1.Output{OutputMap: qjv1.OutputMap{"c": {"f": {Name: strings.Repeat("a", 245), Versioned: true}}}}
	plan := Compute(s, req(map[string]map[string]string{"c": {"f": `{"a":"b"}`}}), exited(map[string]int32{"c": 0}), 0)
	if !plan.Blocked() || !strings.Contains(plan.Problems[0].Message, "too long for a versioned Secret") {
		t.Fatalf("problems: %+v", plan.Problems)
	}
}

func TestParseSpec(t *testing.T) {
	if _, err := ParseSpec(`{"outputMap":{"c":{"f":{"name":"s"}}}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSpec(`{`); err == nil || !strings.Contains(err.Error(), qjv1.AnnotationOutputSpec) {
		t.Fatalf("want an error naming the annotation, got %v", err)
	}
}

var ok2 = map[string]int32{"gen": 0, "fan": 0}

func with(files map[string]map[string]string, container, file, content string) map[string]map[string]string {
	out := clone(files)
	if out[container] == nil {
		out[container] = map[string]string{}
	}
	out[container][file] = content
	return out
}

func without(files map[string]map[string]string, container, file string) map[string]map[string]string {
	out := clone(files)
	delete(out[container], file)
	return out
}

func clone(files map[string]map[string]string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for c, fs := range files {
		out[c] = map[string]string{}
		for f, content := range fs {
			out[c][f] = content
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func names(secrets []Secret) []string {
	var out []string
	for _, s := range secrets {
		out = append(out, s.Name)
	}
	return out
}

func TestRemoteIDLabel(t *testing.T) {
	states := exited(map[string]int32{"gen": 0, "fan": 0})
	gen := states["gen"]
	gen.RemoteID = "db-1"
	states["gen"] = gen
	plan := Compute(spec(false), req(allGood), states, 0)
	if len(plan.Problems) != 0 {
		t.Fatalf("unexpected problems: %+v", plan.Problems)
	}
	for _, s := range plan.Secrets {
		got, set := s.Labels[qjv1.LabelRemoteID]
		if want := s.Container == "gen"; set != want || (want && got != "db-1") {
			t.Errorf("Secret %s of container %s: remote-id label %q (set %v)", s.Name, s.Container, got, set)
		}
	}

	// A value that is no label value (admitted while the webhook was down)
	// fails the file with a message instead of a refused write.
	gen.RemoteID = "not a label value"
	states["gen"] = gen
	plan = Compute(spec(false), req(allGood), states, 0)
	if !plan.Blocked() || !strings.Contains(plan.Problems[0].Message, qjv1.LabelRemoteID) {
		t.Fatalf("problems: %+v", plan.Problems)
	}
}

// An upload makes at most maxSecrets Secrets: the file that crosses the bound
// makes none, and the problem names it, its keys and the bound.
func TestComputeBoundsSecretsPerUpload(t *testing.T) {
	// allGood makes the fan-out file's 3 Secrets (container "fan" comes
	// first), then creds and ver.
	for _, c := range []struct {
		max         int
		wantSecrets int
		wantProblem string
	}{
		{max: 5, wantSecrets: 5},
		{max: 4, wantSecrets: 4, wantProblem: `output file "ver.json" of container "gen": the upload's other files make 4 Secrets already, the most one upload may make`},
		{max: 2, wantSecrets: 2, wantProblem: `output file "many.json" of container "fan" (fan-out) has 3 keys; with the 0 Secrets of the upload's other files that makes 3 Secrets, more than the 2 one upload may make`},
	} {
		plan := Compute(spec(false), req(allGood), exited(map[string]int32{"gen": 0, "fan": 0}), c.max)
		var problems []string
		for _, p := range plan.Problems {
			if p.Reason != qjv1.EventTooManySecrets || !p.Blocking {
				t.Errorf("max %d: problem %+v; want a blocking %s", c.max, p, qjv1.EventTooManySecrets)
			}
			problems = append(problems, p.Message)
		}
		if len(plan.Secrets) != c.wantSecrets {
			t.Errorf("max %d: %d Secrets; want %d", c.max, len(plan.Secrets), c.wantSecrets)
		}
		if got := strings.Join(problems, "\n"); (c.wantProblem == "") != (got == "") || !strings.Contains(got, c.wantProblem) {
			t.Errorf("max %d: problems %q; want %q", c.max, got, c.wantProblem)
		}
	}
}
