package runs

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
)

func TestJobName(t *testing.T) {
	long := strings.Repeat("a", 100)
	cases := []struct {
		qjob string
		run  int64
		want string
	}{
		{"gen-certs", 1, "gen-certs-1"},
		{"gen-certs", 1234, "gen-certs-1234"},
		{strings.Repeat("b", 61), 1, strings.Repeat("b", 61) + "-1"},
	}
	for _, c := range cases {
		if got := JobName(c.qjob, c.run); got != c.want {
			t.Errorf("JobName(%q, %d) = %q; want %q", c.qjob, c.run, got, c.want)
		}
	}
	for _, name := range []string{long, strings.Repeat("c", 62), strings.Repeat("a.", 60)} {
		got := JobName(name, 99)
		if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 || len(got) > 63 {
			t.Errorf("JobName(%q) = %q is not a Job name that fits a label value: %v", name, got, errs)
		}
		if got != JobName(name, 99) {
			t.Errorf("JobName(%q) is not stable", name)
		}
	}
	if JobName(long, 1) == JobName(long+"x", 1) {
		t.Errorf("different long names share a Job name")
	}
}

func TestGeneratedJobNamePrefix(t *testing.T) {
	if got := GeneratedJobNamePrefix("gen-certs", 12); got != "gen-certs-12-" {
		t.Errorf("GeneratedJobNamePrefix = %q; want gen-certs-12-", got)
	}
	for _, name := range []string{strings.Repeat("a", 100), strings.Repeat("c", 54), strings.Repeat("a.", 60)} {
		got := GeneratedJobNamePrefix(name, 99) + "x7k2p" // what the API server appends
		if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 || len(got) > 63 || !strings.HasSuffix(got, "-99-x7k2p") {
			t.Errorf("GeneratedJobNamePrefix(%q) makes %q, not a Job name of run 99 that fits a label value: %v", name, got, errs)
		}
	}
}

func TestLabelValue(t *testing.T) {
	if got := LabelValue("short"); got != "short" {
		t.Errorf("LabelValue(short) = %q", got)
	}
	long := strings.Repeat("x", 200)
	got := LabelValue(long)
	if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
		t.Errorf("LabelValue(long) = %q is not a label value: %v", got, errs)
	}
}

func testQJob() *qjv1.QuarksJob {
	return &qjv1.QuarksJob{
		ObjectMeta: metav1.ObjectMeta{Name: "gen", Namespace: "ns", UID: "uid-1"},
		Spec: qjv1.QuarksJobSpec{
			Trigger: qjv1.Trigger{Strategy: qjv1.StrategyOnce},
			Template: qjv1.JobTemplate{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      map[string]string{"team": "a", qjv1.LabelRun: "spoofed"},
					Annotations: map[string]string{"note": "kept"},
				},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "gen"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
				}},
			},
			Output: &qjv1.Output{OutputMap: qjv1.OutputMap{"c": {"b.json": {Name: "b"}, "a.json": {Name: "a"}}}},
		},
	}
}

func TestNewJob(t *testing.T) {
	qjob := testQJob()
	job, err := NewJob(qjob, Run{Number: 3, By: qjv1.RunTriggerNow, InputsHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if job.Name != "gen-3" || job.Namespace != "ns" {
		t.Errorf("name = %s/%s", job.Namespace, job.Name)
	}
	if job.Labels["team"] != "a" || job.Annotations["note"] != "kept" {
		t.Errorf("template labels/annotations not carried: %v %v", job.Labels, job.Annotations)
	}
	if job.Labels[qjv1.LabelRun] != "3" || job.Spec.Template.Labels[qjv1.LabelRun] != "3" {
		t.Errorf("run label: job %q pod %q", job.Labels[qjv1.LabelRun], job.Spec.Template.Labels[qjv1.LabelRun])
	}
	if job.Spec.Template.Labels[qjv1.LabelQJobName] != "gen" || job.Spec.Template.Labels["app"] != "gen" {
		t.Errorf("pod labels = %v", job.Spec.Template.Labels)
	}
	if job.Annotations[qjv1.AnnotationRunTrigger] != "Now" || job.Annotations[qjv1.AnnotationInputsHash] != "h" {
		t.Errorf("annotations = %v", job.Annotations)
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %q", job.Spec.Template.Spec.RestartPolicy)
	}
	owner := metav1.GetControllerOf(job)
	if owner == nil || owner.UID != "uid-1" || owner.Kind != "QuarksJob" {
		t.Errorf("controller owner = %+v", owner)
	}
	var files map[string][]string
	if err := json.Unmarshal([]byte(job.Spec.Template.Annotations[qjv1.AnnotationOutputFiles]), &files); err != nil {
		t.Fatal(err)
	}
	if strings.Join(files["c"], ",") != "a.json,b.json" {
		t.Errorf("output files = %v", files)
	}
	if _, ok := job.Annotations[qjv1.AnnotationOutputSpec]; ok {
		t.Errorf("the output spec is annotated on the Job, where its creator could change it")
	}
	if job.Spec.Suspend == nil || !*job.Spec.Suspend {
		t.Errorf("the Job is not created suspended")
	}
	withTTL := testQJob()
	withTTL.Spec.Template.Spec.TTLSecondsAfterFinished = ptr.To[int32](0)
	if j, _ := NewJob(withTTL, Run{Number: 1}); j.Spec.TTLSecondsAfterFinished != nil {
		t.Errorf("ttlSecondsAfterFinished kept: Kubernetes could delete the Job before its outcome is read")
	}
	if n, ok := RunNumber(job); !ok || n != 3 {
		t.Errorf("RunNumber = %d, %v", n, ok)
	}
	if qjob.Spec.Template.Spec.Template.Labels[qjv1.LabelRun] != "" {
		t.Errorf("NewJob changed the QuarksJob's template")
	}
}

func TestNewJobWithoutOutput(t *testing.T) {
	qjob := testQJob()
	qjob.Spec.Output = nil
	qjob.Spec.Template.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	job, err := NewJob(qjob, Run{Number: 1, By: qjv1.RunTriggerOnce})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := job.Annotations[qjv1.AnnotationOutputSpec]; ok {
		t.Errorf("output spec annotated without output")
	}
	if _, ok := job.Spec.Template.Annotations[qjv1.AnnotationOutputFiles]; ok {
		t.Errorf("output files annotated without output")
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("restartPolicy overwritten: %q", job.Spec.Template.Spec.RestartPolicy)
	}
}

func TestNewJobDropsReservedKeys(t *testing.T) {
	qjob := testQJob()
	qjob.Spec.Template.Annotations = map[string]string{qjv1.AnnotationOutputResult: `{"persisted":true}`, "note": "kept"}
	qjob.Spec.Template.Spec.Template.Annotations = map[string]string{qjv1.AnnotationOutputSpec: "{}", qjv1.AnnotationRunTrigger: "Now"}
	qjob.Spec.Template.Spec.Template.Labels = map[string]string{qjv1.LabelRun: "99", "app": "gen"}
	want := []string{
		"spec.template.metadata.labels " + qjv1.LabelRun,
		"spec.template.metadata.annotations " + qjv1.AnnotationOutputResult,
		"spec.template.spec.template.metadata.labels " + qjv1.LabelRun,
		"spec.template.spec.template.metadata.annotations " + qjv1.AnnotationRunTrigger,
		"spec.template.spec.template.metadata.annotations " + qjv1.AnnotationOutputSpec,
	}
	if got := qjv1.ReservedTemplateKeys(&qjob.Spec.Template); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ReservedTemplateKeys = %v, want %v", got, want)
	}
	job, err := NewJob(qjob, Run{Number: 1, By: qjv1.RunTriggerOnce})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := job.Annotations[qjv1.AnnotationOutputResult]; ok || job.Annotations["note"] != "kept" {
		t.Errorf("Job annotations = %v", job.Annotations)
	}
	pod := job.Spec.Template
	if _, ok := pod.Annotations[qjv1.AnnotationOutputSpec]; ok || pod.Labels[qjv1.LabelRun] != "1" || pod.Labels["app"] != "gen" {
		t.Errorf("pod labels %v, annotations %v", pod.Labels, pod.Annotations)
	}
}

func TestUnrecorded(t *testing.T) {
	qjob := testQJob()
	expected, err := NewJob(qjob, Run{Number: 2, By: qjv1.RunTriggerNow})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func(j *batchv1.Job)
		want   string
	}{
		{"the controller's own", func(*batchv1.Job) {}, ""},
		{"another owner", func(j *batchv1.Job) { j.OwnerReferences[0].UID = "other" }, "not controlled"},
		{"not suspended", func(j *batchv1.Job) { j.Spec.Suspend = nil }, "not suspended"},
		{"started pods", func(j *batchv1.Job) { j.Status.Active = 1 }, "started pods"},
		{"other run", func(j *batchv1.Job) { j.Labels[qjv1.LabelRun] = "3" }, "run label"},
		{"other image", func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "evil" }, "pod template differs"},
		{"other args", func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Args = []string{"x"} }, "pod template differs"},
		{"extra volume", func(j *batchv1.Job) {
			j.Spec.Template.Spec.Volumes = append(j.Spec.Template.Spec.Volumes, corev1.Volume{Name: "pre-filled"})
		}, "pod template differs"},
		{"other service account", func(j *batchv1.Job) { j.Spec.Template.Spec.ServiceAccountName = "admin" }, "pod template differs"},
		{"defaults set by the API server", func(j *batchv1.Job) {
			j.Spec.Template.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
			j.Spec.Template.Spec.Containers[0].TerminationMessagePath = "/dev/termination-log"
		}, ""},
	}
	for _, c := range cases {
		found := expected.DeepCopy()
		c.change(found)
		got := Unrecorded(found, expected, qjob.UID)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: Unrecorded = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestOutcomeOf(t *testing.T) {
	declared := &qjv1.Output{OutputMap: qjv1.OutputMap{"c": {"a.json": {Name: "a"}}}}
	complete := []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	failed := []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "too many"}}
	cases := []struct {
		name       string
		run        *qjv1.Run
		conditions []batchv1.JobCondition
		want       qjv1.RunResult
		message    string
	}{
		{"active", nil, nil, qjv1.RunRunning, ""},
		{"not true", nil, []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionFalse}}, qjv1.RunRunning, ""},
		{"complete without output", &qjv1.Run{}, complete, qjv1.RunSucceeded, "completed"},
		{"failed", nil, failed, qjv1.RunFailed, "BackoffLimitExceeded"},
		{"complete, output declared, no upload", &qjv1.Run{Output: declared}, complete, qjv1.RunFailed, "no upload"},
		{"complete, output not persisted", &qjv1.Run{Output: declared,
			Uploads: []qjv1.OutputUpload{{Pod: "p", Problems: []string{`file "a.json": bad`}}}}, complete, qjv1.RunFailed, `"a.json"`},
		{"complete, output persisted", &qjv1.Run{Output: declared, Uploads: []qjv1.OutputUpload{{Pod: "p", Succeeded: true, Persisted: true}}}, complete, qjv1.RunSucceeded, "completed"},
		{"a retry persisted after a failed pod", &qjv1.Run{Output: declared, Uploads: []qjv1.OutputUpload{
			{Pod: "p1", Problems: []string{"x"}}, {Pod: "p2", Succeeded: true, Persisted: true}}}, complete, qjv1.RunSucceeded, "completed"},
	}
	for _, c := range cases {
		job := &batchv1.Job{Status: batchv1.JobStatus{Conditions: c.conditions}}
		o := OutcomeOf(job, c.run)
		if o.Result != c.want || !strings.Contains(o.Message, c.message) {
			t.Errorf("%s: got %s %q; want %s containing %q", c.name, o.Result, o.Message, c.want, c.message)
		}
		if c.want != qjv1.RunRunning && o.CompletionTime == nil {
			t.Errorf("%s: no completion time", c.name)
		}
	}
}

// TestOutcomeOfManyPods: a completed run succeeds only when every pod the Job
// needed persisted its output: each completed index, each succeeded pod.
func TestOutcomeOfManyPods(t *testing.T) {
	declared := &qjv1.Output{OutputMap: qjv1.OutputMap{"c": {"a.json": {Name: "a"}}}}
	complete := []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	index := func(i int32) *int32 { return &i }
	indexed := batchv1.IndexedCompletion
	cases := []struct {
		name    string
		spec    batchv1.JobSpec
		status  batchv1.JobStatus
		uploads []qjv1.OutputUpload
		want    qjv1.RunResult
		message string
	}{
		{"indexed, every index persisted", batchv1.JobSpec{CompletionMode: &indexed, Completions: ptr.To[int32](2)},
			batchv1.JobStatus{Succeeded: 2, CompletedIndexes: "0-1"},
			[]qjv1.OutputUpload{{Pod: "p0", Index: index(0), Succeeded: true, Persisted: true}, {Pod: "p1", Index: index(1), Succeeded: true, Persisted: true}},
			qjv1.RunSucceeded, "completed"},
		{"indexed, index 1 wrote nothing", batchv1.JobSpec{CompletionMode: &indexed, Completions: ptr.To[int32](2)},
			batchv1.JobStatus{Succeeded: 2, CompletedIndexes: "0-1"},
			[]qjv1.OutputUpload{{Pod: "p0", Index: index(0), Succeeded: true, Persisted: true},
				{Pod: "p1", Index: index(1), Succeeded: true, Problems: []string{`output file "a.json" of container "c" was not written`}}},
			qjv1.RunFailed, `index 1 (pod p1): output file "a.json" of container "c" was not written`},
		{"indexed, index 2 never uploaded", batchv1.JobSpec{CompletionMode: &indexed, Completions: ptr.To[int32](3)},
			batchv1.JobStatus{Succeeded: 3, CompletedIndexes: "0,1-2"},
			[]qjv1.OutputUpload{{Pod: "p0", Index: index(0), Succeeded: true, Persisted: true}, {Pod: "p1", Index: index(1), Succeeded: true, Persisted: true}},
			qjv1.RunFailed, "index 2: no upload was received from its pod"},
		{"indexed, a retried index persisted on its second pod", batchv1.JobSpec{CompletionMode: &indexed, Completions: ptr.To[int32](1)},
			batchv1.JobStatus{Succeeded: 1, CompletedIndexes: "0"},
			[]qjv1.OutputUpload{{Pod: "p0a", Index: index(0), Problems: []string{"exited 1"}}, {Pod: "p0b", Index: index(0), Succeeded: true, Persisted: true}},
			qjv1.RunSucceeded, "completed"},
		{"two completions, both persisted", batchv1.JobSpec{Completions: ptr.To[int32](2), Parallelism: ptr.To[int32](2)},
			batchv1.JobStatus{Succeeded: 2},
			[]qjv1.OutputUpload{{Pod: "a", Succeeded: true, Persisted: true}, {Pod: "b", Succeeded: true, Persisted: true}},
			qjv1.RunSucceeded, "completed"},
		{"two completions, one persisted", batchv1.JobSpec{Completions: ptr.To[int32](2), Parallelism: ptr.To[int32](2)},
			batchv1.JobStatus{Succeeded: 2},
			[]qjv1.OutputUpload{{Pod: "a", Succeeded: true, Persisted: true}, {Pod: "b", Succeeded: true, Problems: []string{"bad"}}},
			qjv1.RunFailed, "1 of the 2 pods that succeeded persisted their output; pod b: bad"},
		{"two completions, one held for its exit codes", batchv1.JobSpec{Completions: ptr.To[int32](2), Parallelism: ptr.To[int32](2)},
			batchv1.JobStatus{Succeeded: 2},
			[]qjv1.OutputUpload{{Pod: "a", Succeeded: true, Persisted: true}, {Pod: "b", Pending: true, Problems: []string{"exit code unknown"}}},
			qjv1.RunRunning, "waiting for the kubelet's exit codes to persist the output of pod b"},
		{"indexed, index 1 held for its exit codes", batchv1.JobSpec{CompletionMode: &indexed, Completions: ptr.To[int32](2)},
			batchv1.JobStatus{Succeeded: 2, CompletedIndexes: "0-1"},
			[]qjv1.OutputUpload{{Pod: "p0", Index: index(0), Succeeded: true, Persisted: true}, {Pod: "p1", Index: index(1), Pending: true}},
			qjv1.RunRunning, "pod p1"},
		{"a held upload of a pod the Job did not need", batchv1.JobSpec{Completions: ptr.To[int32](1)},
			batchv1.JobStatus{Succeeded: 1},
			[]qjv1.OutputUpload{{Pod: "a", Succeeded: true, Persisted: true}, {Pod: "b", Pending: true}},
			qjv1.RunSucceeded, "completed"},
	}
	failed := []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}}
	held := []qjv1.OutputUpload{{Pod: "a", Pending: true}}
	if o := OutcomeOf(&batchv1.Job{Status: batchv1.JobStatus{Conditions: failed}}, &qjv1.Run{Output: declared, Uploads: held}); o.Result != qjv1.RunFailed || len(o.Awaiting) != 0 {
		t.Errorf("a failed Job without writeOnFailure: got %s awaiting %v; want Failed at once", o.Result, o.Awaiting)
	}
	onFailure := &qjv1.Output{WriteOnFailure: true, OutputMap: declared.OutputMap}
	if o := OutcomeOf(&batchv1.Job{Status: batchv1.JobStatus{Conditions: failed}}, &qjv1.Run{Output: onFailure, Uploads: held}); o.Result != qjv1.RunRunning ||
		!strings.HasPrefix(o.Failure, "the job failed (BackoffLimitExceeded)") || !strings.Contains(o.Message, "pod a") {
		t.Errorf("a failed Job with writeOnFailure and a held upload: got %s %q (failure %q); want Running until it is persisted", o.Result, o.Message, o.Failure)
	}
	for _, c := range cases {
		job := &batchv1.Job{Spec: c.spec, Status: c.status}
		job.Status.Conditions = complete
		o := OutcomeOf(job, &qjv1.Run{Output: declared, Uploads: c.uploads})
		if o.Result != c.want || !strings.Contains(o.Message, c.message) {
			t.Errorf("%s: got %s %q; want %s containing %q", c.name, o.Result, o.Message, c.want, c.message)
		}
	}
}

// TestOriginalPlacementOfJobSpecFields: Job spec fields the original
// QuarksJob took directly under the template count where spec leaves them
// unset.
func TestOriginalPlacementOfJobSpecFields(t *testing.T) {
	qjob := testQJob()
	qjob.Spec.Template.BackoffLimit = ptr.To[int32](2)
	qjob.Spec.Template.Parallelism = ptr.To[int32](3)
	qjob.Spec.Template.Spec.Parallelism = ptr.To[int32](1)
	job, err := NewJob(qjob, Run{Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 2 {
		t.Errorf("backoffLimit = %v, want 2 from spec.template.backoffLimit", job.Spec.BackoffLimit)
	}
	if *job.Spec.Parallelism != 1 {
		t.Errorf("parallelism = %d, want spec.template.spec's 1", *job.Spec.Parallelism)
	}
}

// TestMessageOfManyFailedPodsIsBounded: a run of 2,000 pods that all failed
// to persist names the first few and counts the rest, within what a
// condition's message may hold.
func TestMessageOfManyFailedPodsIsBounded(t *testing.T) {
	declared := &qjv1.Output{OutputMap: qjv1.OutputMap{"c": {"a.json": {Name: "a"}}}}
	job := &batchv1.Job{
		Spec:   batchv1.JobSpec{Completions: ptr.To[int32](2000), Parallelism: ptr.To[int32](100)},
		Status: batchv1.JobStatus{Succeeded: 2000, Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}},
	}
	var uploads []qjv1.OutputUpload
	for i := range 2000 {
		uploads = append(uploads, qjv1.OutputUpload{Pod: fmt.Sprintf("pod-%d", i), Succeeded: true,
			Problems: []string{strings.Repeat("x", 300)}})
	}
	o := OutcomeOf(job, &qjv1.Run{Output: declared, Uploads: uploads})
	if o.Result != qjv1.RunFailed || len(o.Message) > maxMessage+200 || !strings.Contains(o.Message, "more") ||
		!strings.Contains(o.Message, "0 of the 2000 pods that succeeded persisted their output; pod pod-0: xxx") {
		t.Fatalf("got %s, %d bytes: %.300q", o.Result, len(o.Message), o.Message)
	}
}

func TestUnproven(t *testing.T) {
	pod := func(name, index string, phase corev1.PodPhase) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: phase}}
		if index != "" {
			p.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: index}
		}
		return p
	}
	notRunPod := func(p *corev1.Pod) string {
		if strings.HasPrefix(p.Name, "forged") {
			return "its container \"main\" ran image \"tenant/printer\""
		}
		return ""
	}
	indexed := func(completions int32, done string) *batchv1.Job {
		return &batchv1.Job{Spec: batchv1.JobSpec{Completions: ptr.To(completions), CompletionMode: ptr.To(batchv1.IndexedCompletion)},
			Status: batchv1.JobStatus{CompletedIndexes: done}}
	}
	tests := []struct {
		name string
		job  *batchv1.Job
		pods []corev1.Pod
		want string // a part of the message; "" when proven
	}{
		{"one run pod succeeded", &batchv1.Job{}, []corev1.Pod{pod("run-a", "", corev1.PodSucceeded)}, ""},
		{"a failed try and a success", &batchv1.Job{}, []corev1.Pod{pod("run-a", "", corev1.PodFailed), pod("run-b", "", corev1.PodSucceeded)}, ""},
		{"only a forged pod succeeded", &batchv1.Job{}, []corev1.Pod{pod("forged", "", corev1.PodSucceeded), pod("run-a", "", corev1.PodFailed)},
			`no pod of this run succeeded for 1 of 1 completions; pod forged is not a pod of this run: its container "main" ran image`},
		{"no pod left", &batchv1.Job{}, nil, "1 of 1 completions"},
		{"three completions, two run pods", &batchv1.Job{Spec: batchv1.JobSpec{Completions: ptr.To[int32](3)}},
			[]corev1.Pod{pod("run-a", "", corev1.PodSucceeded), pod("run-b", "", corev1.PodSucceeded), pod("forged", "", corev1.PodSucceeded)}, "1 of 3 completions"},
		{"every index", indexed(2, "0-1"), []corev1.Pod{pod("run-a", "0", corev1.PodSucceeded), pod("run-b", "1", corev1.PodSucceeded)}, ""},
		{"an index through a forged pod", indexed(2, "0-1"), []corev1.Pod{pod("run-a", "0", corev1.PodSucceeded), pod("forged", "1", corev1.PodSucceeded)}, "index 1"},
		{"a success policy's indexes", indexed(3, "2"), []corev1.Pod{pod("run-a", "2", corev1.PodSucceeded)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Unproven(tt.job, tt.pods, notRunPod)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("Unproven = %q, want %q", got, tt.want)
			}
		})
	}
}
