package cluster

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"
)

// Restart is the fault the chaos tests inject into the control plane: it
// kills the daemon name with SIGKILL (no shutdown, like a crash or a lost
// machine), keeps it down for down, starts it again with the flags Up gave it,
// and waits until it serves. Only the daemons whose restart a client must
// survive can be restarted: kube-apiserver and etcd.
func Restart(ctx context.Context, c Config, name string, down time.Duration, log io.Writer) error {
	var d daemon
	var ready func(context.Context) (bool, error)
	switch name {
	case "kube-apiserver":
		client, err := c.client()
		if err != nil {
			return err
		}
		d, ready = c.apiserver(), func(ctx context.Context) (bool, error) {
			_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			return err == nil, err
		}
	case "etcd":
		d, ready = c.etcd(), httpOK("http://"+EtcdClient+"/health")
	default:
		return fmt.Errorf("cannot restart %q: only kube-apiserver and etcd can be restarted", name)
	}
	pid := c.pid(name)
	if pid == 0 {
		return fmt.Errorf("%s is not running in %s", name, c.Dir)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s (pid %d): %w", name, pid, err)
	}
	if !waitGone(pid, 10*time.Second) {
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", name, pid)
	}
	_, _ = fmt.Fprintf(log, "%s (pid %d) killed\n", name, pid)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	if err := c.start(d); err != nil {
		return err
	}
	if err := c.waitFor(ctx, name, []string{name}, ready); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(log, "%s serves again, %.1fs after it was killed\n", name, time.Since(killed).Seconds())
	return nil
}
