package outputendpoint

// Uploads held for their exit codes.
//
// The controller persists output only once the kubelet has reported that the
// declaring containers exited (see waitForExitCodes). On a loaded node the
// kubelet can report later than the persister may wait: the persister has the
// pod's grace period, and the output would be lost. So an upload whose exit
// codes are still unknown after the endpoint's wait is held instead: kept in a
// Secret of the controller's own namespace, where the tenants whose pods
// upload cannot write, and recorded as pending on the run. The persister is
// done. The leader's holder persists the upload once the kubelet reports, and
// the run does not end before it has (bounded by the QuarksJob reconciler).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/upload"
	"code.cloudfoundry.org/quarks-job/controller/internal/output"
)

const (
	// heldLabel marks the Secrets that hold uploads.
	heldLabel = qjv1.GroupName + "/held-upload"
	// heldType is their Secret type.
	heldType corev1.SecretType = qjv1.GroupName + "/held-upload"
	// heldKey is the key of the upload, as the persister sent it (JSON).
	heldKey = "upload.json"
	// The annotations name the pod that uploaded, as its token proved.
	heldPodNamespace = qjv1.GroupName + "/pod-namespace"
	heldPodName      = qjv1.GroupName + "/pod-name"
	heldPodUID       = qjv1.GroupName + "/pod-uid"
	// heldBytes annotates the size of the held upload.
	heldBytes = qjv1.GroupName + "/held-bytes"
	// maxHeldBytes is the largest upload held: a Secret holds at most 1 MiB.
	// A larger one is not held; the persister retries it as before.
	maxHeldBytes = 1000 << 10
	// The held uploads are bounded, in all and for each namespace the pods
	// upload from (the controller's namespace is under no tenant's quota):
	// beyond, an upload is not held and the persister retries it as before.
	maxHeld, maxHeldPerNamespace             = 1000, 250
	maxHeldTotalBytes, maxHeldNamespaceBytes = 256 << 20, 64 << 20
	// settleTimeout bounds the work on one held upload.
	settleTimeout = 30 * time.Second
	// DefaultHoldInterval is how often the holder looks at the held uploads.
	DefaultHoldInterval = 2 * time.Second
)

// heldName is the name of the Secret that holds the upload of the pod.
func heldName(pod types.UID) string { return "quarks-job-held-" + string(pod) }

// hold keeps the upload of the pod ref for the holder. A pod's later upload
// replaces its earlier one.
func (h *handler) hold(ctx context.Context, ref podRef, req *upload.Request) error {
	if h.holdNamespace == "" {
		return errors.New("no namespace to hold uploads in is configured")
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if len(raw) > maxHeldBytes {
		return fmt.Errorf("the upload (%d bytes) is larger than the %d bytes an upload can be held with", len(raw), maxHeldBytes)
	}
	if err := h.roomToHold(ctx, ref, len(raw)); err != nil {
		return err
	}
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: heldName(ref.UID), Namespace: h.holdNamespace,
			Labels: map[string]string{heldLabel: "true"},
			Annotations: map[string]string{
				heldPodNamespace: ref.Namespace, heldPodName: ref.Name, heldPodUID: string(ref.UID),
				heldBytes: strconv.Itoa(len(raw)),
			},
		},
		Type: heldType,
		Data: map[string][]byte{heldKey: raw},
	}
	err = h.client.Create(ctx, want)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing := &corev1.Secret{}
	if err := h.reader.Get(ctx, client.ObjectKeyFromObject(want), existing); err != nil {
		return err
	}
	if existing.Type != heldType {
		return fmt.Errorf("secret %s/%s exists and does not hold an upload", existing.Namespace, existing.Name)
	}
	if maps.Equal(existing.Labels, want.Labels) && maps.Equal(existing.Annotations, want.Annotations) &&
		maps.EqualFunc(existing.Data, want.Data, bytes.Equal) {
		// A retry of the same upload: nothing to write. A held upload is
		// rewritten only when its content changes, at most once per
		// exit-code wait of its pod's uploads.
		return nil
	}
	existing.Labels, existing.Annotations, existing.Data = want.Labels, want.Annotations, want.Data
	return h.client.Update(ctx, existing)
}

// roomToHold refuses an upload of size bytes from the pod ref when the held
// uploads are at one of their bounds (a pod's earlier held upload, which
// this one replaces, does not count).
func (h *handler) roomToHold(ctx context.Context, ref podRef, size int) error {
	held, err := h.listHeld(ctx)
	if err != nil {
		return err
	}
	count, total, nsCount, nsBytes := 1, size, 1, size
	for _, item := range held.Items {
		if item.Name == heldName(ref.UID) {
			continue
		}
		n, _ := strconv.Atoi(item.Annotations[heldBytes])
		count, total = count+1, total+n
		if item.Annotations[heldPodNamespace] == ref.Namespace {
			nsCount, nsBytes = nsCount+1, nsBytes+n
		}
	}
	switch {
	case count > maxHeld || total > maxHeldTotalBytes:
		return fmt.Errorf("the controller holds %d uploads (%d bytes), its bound", count-1, total-size)
	case nsCount > maxHeldPerNamespace || nsBytes > maxHeldNamespaceBytes:
		return fmt.Errorf("the controller holds %d uploads (%d bytes) from namespace %s, its bound", nsCount-1, nsBytes-size, ref.Namespace)
	}
	return nil
}

// listHeld lists the metadata of the held uploads.
func (h *handler) listHeld(ctx context.Context) (*metav1.PartialObjectMetadataList, error) {
	held := &metav1.PartialObjectMetadataList{}
	held.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	err := h.reader.List(ctx, held, client.InNamespace(h.holdNamespace), client.MatchingLabels{heldLabel: "true"})
	return held, err
}

// heldNotice tells the persister its upload is held.
const heldNotice = "the controller holds the upload and persists it when the kubelet reports the exit codes"

// heldBefore reports whether the run records a held upload of the pod.
func heldBefore(run *origin) bool {
	return slices.ContainsFunc(run.record.Uploads, func(u qjv1.OutputUpload) bool { return u.Pod == run.pod.Name && u.Pending })
}

// recordedDone is the pod's upload the run records as done (every declaring
// container exited 0 and the output was written), if there is one.
func recordedDone(run *origin) *upload.Result {
	for i := range run.record.Uploads {
		if u := &run.record.Uploads[i]; u.Pod == run.pod.Name && u.Succeeded && u.Persisted && !u.Pending {
			return u
		}
	}
	return nil
}

// holder persists the held uploads once the kubelet has reported their
// pods' exit codes. It runs on the leader only.
type holder struct {
	h        *handler
	interval time.Duration
}

// NeedLeaderElection is true: one replica persists the held uploads.
func (*holder) NeedLeaderElection() bool { return true }

var _ manager.LeaderElectionRunnable = &holder{}

// Start looks at the held uploads every interval until ctx is done.
func (o *holder) Start(ctx context.Context) error {
	ticker := time.NewTicker(o.interval)
	defer ticker.Stop()
	for {
		o.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// pass settles each held upload it can. It lists their metadata only: a
// held upload's data is read once its exit codes are known.
func (o *holder) pass(ctx context.Context) {
	held, err := o.h.listHeld(ctx)
	if err != nil {
		if ctx.Err() == nil {
			o.h.log.Error(err, "listing the held uploads")
		}
		return
	}
	for i := range held.Items {
		sctx, cancel := context.WithTimeout(ctx, settleTimeout)
		o.settle(sctx, &held.Items[i])
		cancel()
	}
}

// settle persists one held upload when its pod's exit codes are known, and
// drops it when its run can no longer take it.
func (o *holder) settle(ctx context.Context, item *metav1.PartialObjectMetadata) {
	a := item.Annotations
	ref := podRef{Namespace: a[heldPodNamespace], Name: a[heldPodName], UID: types.UID(a[heldPodUID])}
	log := o.h.log.WithValues("pod", ref.Namespace+"/"+ref.Name, "held", item.Name)
	if item.Name != heldName(ref.UID) {
		log.Info("ignoring a Secret labeled as a held upload whose name is not its pod's")
		return
	}
	run, err := o.h.resolve(ctx, ref)
	var refused *httpError
	switch {
	case errors.As(err, &refused) && refused.status != http.StatusServiceUnavailable:
		// The pod, its Job or its run is gone or over: the run has ended
		// (or ends at its bound) saying the output is missing.
		log.Info("dropping a held upload its run can no longer take", "reason", err.Error())
		o.drop(ctx, log, item.Name, item.UID, item.ResourceVersion)
		return
	case err != nil:
		return // read again next time
	}
	states := containerStates(run.pod, run.job)
	if len(output.ContainersAwaitingExit(outputSpec(run), states)) > 0 {
		return // still unknown
	}
	held := &corev1.Secret{}
	if err := o.h.reader.Get(ctx, client.ObjectKey{Namespace: o.h.holdNamespace, Name: item.Name}, held); err != nil || held.UID != item.UID {
		return // replaced or gone since the list: next time
	}
	if held.Type != heldType {
		log.Info("ignoring a Secret labeled as a held upload that is not one", "type", held.Type)
		return
	}
	req, err := upload.DecodeRequest(bytes.NewReader(held.Data[heldKey]))
	if err != nil {
		log.Error(err, "a held upload does not decode; dropping it")
		o.drop(ctx, log, held.Name, held.UID, held.ResourceVersion)
		return
	}
	if later := laterAttempt(run, states); later != "" {
		// A failed attempt's output must not replace its retry's.
		result := upload.Result{Pod: run.pod.Name, Index: completionIndex(run.pod), Problems: []string{fmt.Sprintf(
			"the output of this failed attempt was not persisted: pod %s, a later attempt, persisted its output first", later)}}
		if err := o.h.recordResult(ctx, run, result); err != nil {
			log.Info("recording a superseded held upload must be tried again", "reason", err.Error())
			return
		}
		o.drop(ctx, log, held.Name, held.UID, held.ResourceVersion)
		return
	}
	outcome := o.h.persist(ctx, log, run, req, states, nil, false)
	if outcome.retry != "" {
		log.Info("persisting a held upload must be tried again", "reason", outcome.retry)
		return
	}
	log.Info("held upload handled", "persisted", outcome.result.Persisted, "problems", len(outcome.result.Problems))
	o.drop(ctx, log, held.Name, held.UID, held.ResourceVersion)
}

// laterAttempt names the pod of the run that persisted its output, in place
// of the held pod (the same completion index, or any pod of a Job without
// indexes), when the held pod's declaring containers did not all exit 0.
func laterAttempt(run *origin, states map[string]output.ContainerState) string {
	if output.AllExitedZero(outputSpec(run), states) {
		return ""
	}
	index := completionIndex(run.pod)
	for _, u := range run.record.Uploads {
		sameIndex := index == nil || (u.Index != nil && *u.Index == *index)
		if u.Pod != run.pod.Name && u.Succeeded && u.Persisted && sameIndex {
			return u.Pod
		}
	}
	return ""
}

// drop deletes a held upload, unless it was replaced since it was read.
func (o *holder) drop(ctx context.Context, log logr.Logger, name string, uid types.UID, resourceVersion string) {
	held := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.h.holdNamespace}}
	err := o.h.client.Delete(ctx, held, client.Preconditions{UID: &uid, ResourceVersion: &resourceVersion})
	if client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		log.Error(err, "deleting a held upload")
	}
}
