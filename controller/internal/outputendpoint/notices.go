package outputendpoint

import (
	corev1 "k8s.io/api/core/v1"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/api/text"
	"code.cloudfoundry.org/quarks-job/controller/internal/output"
)

// notices are the Events of one upload, grouped by type and reason: the
// events API merges Events of the same reason regarding the same object into
// one series that shows only the first note, so one Event carries every
// message of its reason.
type notices struct {
	order    []noticeKey
	messages map[noticeKey][]string
}

type noticeKey struct{ eventType, reason string }

func (n *notices) add(eventType, reason, message string) {
	key := noticeKey{eventType, reason}
	if n.messages == nil {
		n.messages = map[noticeKey][]string{}
	}
	if _, seen := n.messages[key]; !seen {
		n.order = append(n.order, key)
	}
	n.messages[key] = append(n.messages[key], message)
}

// maxNote is what an Event's note may hold (1 kB), less room for the ellipsis.
const maxNote = 1000

// emit records the notices as Events on the QuarksJob, related to the Job.
func (h *handler) emit(run *origin, n notices) {
	if h.recorder == nil {
		return
	}
	for _, key := range n.order {
		h.recorder.Eventf(run.qjob, run.job, key.eventType, key.reason, "PersistOutput", "%s", joinNote(n.messages[key]))
	}
}

// joinNote joins messages within maxNote, saying how many did not fit (the
// Job's result annotation and the QuarksJob's status hold them all).
func joinNote(messages []string) string { return text.List(messages, "; ", 0, maxNote) }

func eventType(p output.Problem) string {
	if p.Blocking {
		return corev1.EventTypeWarning
	}
	if p.Reason == qjv1.EventUndeclaredOutput {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}

// secretNames lists the first few Secrets' names and counts the rest, short
// enough for an Event's note with the text around it.
func secretNames(secrets []qjv1.OutputSecret) string {
	names := make([]string, len(secrets))
	for i, s := range secrets {
		names[i] = s.Name
	}
	return text.List(names, ", ", 10, maxNote/2)
}
