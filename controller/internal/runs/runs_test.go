package runs

import (
	"encoding/json"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
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
			Template: batchv1.JobTemplateSpec{
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
	var spec qjv1.Output
	if err := json.Unmarshal([]byte(job.Annotations[qjv1.AnnotationOutputSpec]), &spec); err != nil || spec.OutputMap["c"]["a.json"].Name != "a" {
		t.Errorf("output spec snapshot = %v (%v)", spec, err)
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

func TestOutcomeOf(t *testing.T) {
	result := func(r upload.Result) string { b, _ := json.Marshal(r); return string(b) }
	complete := []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	failed := []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "too many"}}
	cases := []struct {
		name        string
		annotations map[string]string
		conditions  []batchv1.JobCondition
		want        qjv1.RunResult
		message     string
	}{
		{"active", nil, nil, qjv1.RunRunning, ""},
		{"not true", nil, []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionFalse}}, qjv1.RunRunning, ""},
		{"complete without output", nil, complete, qjv1.RunSucceeded, "completed"},
		{"failed", nil, failed, qjv1.RunFailed, "BackoffLimitExceeded"},
		{"complete, output declared, no upload", map[string]string{qjv1.AnnotationOutputSpec: "{}"}, complete, qjv1.RunFailed, "no upload"},
		{"complete, output not persisted", map[string]string{qjv1.AnnotationOutputSpec: "{}",
			qjv1.AnnotationOutputResult: result(upload.Result{Problems: []string{`file "a.json": bad`}})}, complete, qjv1.RunFailed, `"a.json"`},
		{"complete, output persisted", map[string]string{qjv1.AnnotationOutputSpec: "{}",
			qjv1.AnnotationOutputResult: result(upload.Result{Persisted: true})}, complete, qjv1.RunSucceeded, "completed"},
		{"complete, result garbage", map[string]string{qjv1.AnnotationOutputSpec: "{}", qjv1.AnnotationOutputResult: "{"}, complete, qjv1.RunFailed, "not valid JSON"},
	}
	for _, c := range cases {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Annotations: c.annotations}, Status: batchv1.JobStatus{Conditions: c.conditions}}
		o := OutcomeOf(job)
		if o.Result != c.want || !strings.Contains(o.Message, c.message) {
			t.Errorf("%s: got %s %q; want %s containing %q", c.name, o.Result, o.Message, c.want, c.message)
		}
		if c.want != qjv1.RunRunning && o.CompletionTime == nil {
			t.Errorf("%s: no completion time", c.name)
		}
	}
}
