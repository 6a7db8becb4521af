package commands

import (
	"bufio"
	"context"
	"io"
	"sort"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	qjv1 "code.cloudfoundry.org/quarks-job/api/quarksjob/v1alpha1"
	"code.cloudfoundry.org/quarks-job/kubectl-qjob/internal/console"
)

// declaredContainers are the containers of the QuarksJob's pod template,
// init containers first: the ones whose logs a user wants, not the
// persister the webhook adds.
func declaredContainers(qjob *qjv1.QuarksJob) []string {
	pod := qjob.Spec.Template.Spec.Template.Spec
	var names []string
	for _, c := range pod.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Containers {
		names = append(names, c.Name)
	}
	return names
}

// runPods selects the pods of the Job with the UID the run's record holds,
// by the label the Job controller sets.
func runPods(jobUID string) string {
	return labels.Set{batchv1.ControllerUidLabel: jobUID}.String()
}

// logFollower streams the logs of the declared containers of every pod of a
// run's Job, each from the moment it started, prefixed [pod/container].
type logFollower struct {
	*session
	con        *console.Console
	jobUID     string
	containers []string

	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex // guards started
	started map[string]bool
	streams sync.WaitGroup
}

func newLogFollower(ctx context.Context, s *session, con *console.Console, jobUID string, containers []string) *logFollower {
	f := &logFollower{session: s, con: con, jobUID: jobUID, containers: containers, started: map[string]bool{}}
	f.ctx, f.cancel = context.WithCancel(ctx)
	return f
}

// run watches the run's pods and starts a stream for each declared
// container once it has started, until stop.
func (f *logFollower) run() {
	ctx := f.ctx
	pods := f.clientset.CoreV1().Pods(f.namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.LabelSelector = runPods(f.jobUID)
			list, err := pods.List(ctx, opts)
			return list, explain(err, "list", "pods", f.namespace, "")
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.LabelSelector = runPods(f.jobUID)
			w, err := pods.Watch(ctx, opts)
			return w, explain(err, "watch", "pods", f.namespace, "")
		},
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(event watch.Event) (bool, error) {
		if pod, ok := event.Object.(*corev1.Pod); ok && event.Type != watch.Deleted {
			f.follow(ctx, pod)
		}
		return false, nil
	})
	if err != nil && ctx.Err() == nil {
		f.con.Note("cannot follow the run's logs: %v", err)
	}
}

// follow starts a stream for each declared container of pod that started.
func (f *logFollower) follow(ctx context.Context, pod *corev1.Pod) {
	statuses := append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, name := range f.containers {
		for _, s := range statuses {
			if s.Name != name || (s.State.Running == nil && s.State.Terminated == nil) {
				continue
			}
			key := pod.Name + "/" + name
			f.mu.Lock()
			seen := f.started[key]
			f.started[key] = true
			f.mu.Unlock()
			if !seen {
				f.streams.Add(1)
				go func() {
					defer f.streams.Done()
					f.stream(ctx, pod.Name, name)
				}()
			}
		}
	}
}

func (f *logFollower) stream(ctx context.Context, pod, container string) {
	req := f.clientset.CoreV1().Pods(f.namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true})
	logs, err := req.Stream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.con.Note("[pod/%s/%s] cannot read logs: %v", pod, container, explain(err, "get", "pods/log", f.namespace, ""))
		}
		return
	}
	defer func() { _ = logs.Close() }()
	printLines(logs, func(line string) { f.con.Println("[pod/%s/%s] %s", pod, container, line) })
}

func printLines(r io.Reader, printLine func(string)) {
	lines := bufio.NewScanner(r)
	lines.Buffer(make([]byte, 64*1024), 1024*1024)
	for lines.Scan() {
		printLine(lines.Text())
	}
}

// drain waits up to timeout for the streams to end by themselves.
func (f *logFollower) drain(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		f.streams.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

func (f *logFollower) stop() {
	f.cancel()
	f.streams.Wait()
}

// failedLogLines is how much of a failing container's log a failed run shows.
const failedLogLines = 20

// printFailedLogs prints the end of the logs of the declared containers of
// the run's pods that exited with a non-zero code or never ran.
func (w *runWait) printFailedLogs(ctx context.Context) {
	list, err := w.clientset.CoreV1().Pods(w.namespace).List(ctx, metav1.ListOptions{LabelSelector: runPods(w.jobUID)})
	if err != nil {
		w.con.Note("cannot read the run's pods: %v", explain(err, "list", "pods", w.namespace, ""))
		return
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	declared := map[string]bool{}
	for _, c := range declaredContainers(w.qjob) {
		declared[c] = true
	}
	for _, pod := range list.Items {
		for _, s := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
			if !declared[s.Name] {
				continue
			}
			switch t := s.State.Terminated; {
			case s.State.Waiting != nil:
				w.con.Println("--- pod/%s/%s never ran: %s %s", pod.Name, s.Name, s.State.Waiting.Reason, s.State.Waiting.Message)
			case t != nil && t.ExitCode != 0:
				w.con.Println("--- pod/%s/%s exited with code %d (%s); the last %d lines of its log:", pod.Name, s.Name, t.ExitCode, t.Reason, failedLogLines)
				w.printTail(ctx, pod.Name, s.Name)
			}
		}
	}
}

func (w *runWait) printTail(ctx context.Context, pod, container string) {
	req := w.clientset.CoreV1().Pods(w.namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: ptr.To(int64(failedLogLines))})
	logs, err := req.Stream(ctx)
	if err != nil {
		w.con.Println("(cannot read it: %v)", explain(err, "get", "pods/log", w.namespace, ""))
		return
	}
	defer func() { _ = logs.Close() }()
	printLines(logs, func(line string) { w.con.Println("%s", line) })
}
