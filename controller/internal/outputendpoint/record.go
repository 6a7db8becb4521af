package outputendpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
)

// noteRefusal records on the run that an upload of its pod was received and
// refused, and why, when the run holds nothing of that pod yet: if the
// persister gives up, the run's message says what happened to its upload,
// not that none was received. A later upload of the pod replaces the note;
// the note never replaces what the run holds of the pod. One write per pod at
// most; a failure to write is only logged.
func (h *handler) noteRefusal(ctx context.Context, log logr.Logger, run *origin, refusal error) {
	if slices.ContainsFunc(run.record.Uploads, func(u qjv1.OutputUpload) bool { return u.Pod == run.pod.Name }) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteTimeout)
	defer cancel()
	result := upload.Result{Pod: run.pod.Name, Index: completionIndex(run.pod), Problems: []string{"its upload was received and refused: " + refusal.Error()}}
	if err := h.record(ctx, run, result, false); err != nil {
		log.Error(err, "recording a refused upload on the run")
	}
}

// noteTimeout bounds the write of a refusal's note.
const noteTimeout = 5 * time.Second

// recordAttempts bounds the conflicting writes of one result: the uploads of
// a run's other pods append meanwhile.
const recordAttempts = 8

// recordResult stores the pod's Result in the run's record in the QuarksJob
// status, where only the controller writes. It is a JSON patch whose tests
// make it apply only while the record is still this run's and running, so a
// run that ended or was replaced meanwhile keeps what it had. Uploads of the
// pods of one run append to the list without conflicting; a pod's second
// upload replaces its entry, checked against the resourceVersion.
func (h *handler) recordResult(ctx context.Context, run *origin, result upload.Result) error {
	return h.record(ctx, run, result, true)
}

// record stores result as recordResult does; without replace, only when the
// run holds nothing of the pod yet.
func (h *handler) record(ctx context.Context, run *origin, result upload.Result, replace bool) error {
	result.Truncate() // the record stays small whatever the output
	for range recordAttempts {
		qjob := &qjv1.QuarksJob{}
		if err := h.reader.Get(ctx, client.ObjectKeyFromObject(run.qjob), qjob); err != nil {
			return err
		}
		last := qjob.Status.LastRun
		if qjob.UID != run.qjob.UID || last == nil || last.JobUID != run.job.UID || last.Result != qjv1.RunRunning {
			return fmt.Errorf("run %d of QuarksJob %s is no longer the running one; its result was not recorded", run.record.Number, run.qjob.Name)
		}
		ops := []jsonPatchOp{
			{Op: "test", Path: "/status/lastRun/jobUID", Value: run.job.UID},
			{Op: "test", Path: "/status/lastRun/result", Value: qjv1.RunRunning},
		}
		if recordedSize(last.Uploads)+recordedSize(result) > maxUploadsBytes {
			result.Compact()
		}
		i := slices.IndexFunc(last.Uploads, func(u qjv1.OutputUpload) bool { return u.Pod == result.Pod })
		switch {
		case i >= 0 && (!replace || equality.Semantic.DeepEqual(last.Uploads[i], result)):
			return nil
		case i >= 0:
			ops = append(ops, jsonPatchOp{Op: "test", Path: "/metadata/resourceVersion", Value: qjob.ResourceVersion},
				jsonPatchOp{Op: "replace", Path: fmt.Sprintf("/status/lastRun/uploads/%d", i), Value: result})
		case last.Uploads == nil:
			ops = append(ops, jsonPatchOp{Op: "test", Path: "/metadata/resourceVersion", Value: qjob.ResourceVersion},
				jsonPatchOp{Op: "add", Path: "/status/lastRun/uploads", Value: []upload.Result{result}})
		default:
			ops = append(ops, jsonPatchOp{Op: "add", Path: "/status/lastRun/uploads/-", Value: result})
		}
		patch, err := json.Marshal(ops)
		if err != nil {
			return err
		}
		err = h.client.Status().Patch(ctx, qjob, client.RawPatch(types.JSONPatchType, patch))
		if apierrors.IsConflict(err) || apierrors.IsInvalid(err) || isFailedTest(err) {
			continue // the record changed under us: read it again
		}
		return err
	}
	return fmt.Errorf("the status of QuarksJob %s kept changing", run.qjob.Name)
}

// maxUploadsBytes bounds the uploads in a run's record (the whole QuarksJob
// must stay well below the API server's 1.5 MB): beyond it, each further
// upload is recorded compacted (see OutputUpload.Compact).
const maxUploadsBytes = 256 << 10

func recordedSize(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// isFailedTest reports whether a JSON patch was refused because one of its
// test operations (or a path it assumed) no longer held: the API server
// answers 422 or 400.
func isFailedTest(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	code := status.Status().Code
	return code == http.StatusUnprocessableEntity || code == http.StatusBadRequest
}
