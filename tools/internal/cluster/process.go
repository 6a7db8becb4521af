package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is one long-running process of the cluster. It outlives the
// command that starts it: its pid is kept in <dir>/pids/<name>.pid.
type daemon struct {
	name string
	path string
	args []string
	env  []string
}

// hostPath is the PATH the daemons see: containerd needs its shim and runc,
// kube-proxy iptables.
const hostPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func (c Config) start(d daemon) error {
	logFile, err := os.Create(c.path("logs", d.name+".log"))
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }() // the daemon writes through its own descriptor
	cmd := exec.Command(d.path, d.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append([]string{hostPath, "HOME=" + c.Dir}, d.env...)
	cmd.Dir = c.Dir
	// Its own session: the daemon survives this command and a terminal's
	// signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	if err := os.WriteFile(c.pidFile(d.name), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	return cmd.Process.Release()
}

func (c Config) pidFile(name string) string { return c.path("pids", name+".pid") }

// pid returns the pid of the running daemon name, or 0. A pid counts only
// while its command line still names the cluster's directory, so a reused
// pid is never signaled.
func (c Config) pid(name string) int {
	raw, err := os.ReadFile(c.pidFile(name))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	// A process that is still being exec'd (or stuck in the kernel) shows
	// an empty command line for a moment: it is ours all the same.
	if len(cmdline) > 0 && !bytes.Contains(cmdline, []byte(c.Dir)) {
		return 0
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && isZombie(stat) {
		return 0
	}
	return pid
}

func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// alive fails with the end of the daemon's log when it has exited.
func (c Config) alive(name string) error {
	if c.pid(name) != 0 {
		return nil
	}
	return fmt.Errorf("%s exited%s%s; end of %s:\n%s", name, c.exitStatus(name), c.procState(name), c.path("logs", name+".log"), c.logTail(name, 25))
}

// procState describes what the daemon's pid is now, for a daemon that
// seems gone without a word in its log.
func (c Config) procState(name string) string {
	raw, err := os.ReadFile(c.pidFile(name))
	if err != nil {
		return fmt.Sprintf(" (no pid file: %v)", err)
	}
	pid := strings.TrimSpace(string(raw))
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return " (pid " + pid + " is gone)"
	}
	cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
	return fmt.Sprintf(" (pid %s: %.60s; %.120s)", pid, stat, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
}

// exitStatus reaps a daemon this process started and says how it ended.
func (c Config) exitStatus(name string) string {
	raw, err := os.ReadFile(c.pidFile(name))
	if err != nil {
		return ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return ""
	}
	var status syscall.WaitStatus
	if got, err := syscall.Wait4(pid, &status, syscall.WNOHANG, nil); err != nil || got != pid {
		return ""
	}
	if status.Signaled() {
		return fmt.Sprintf(" (killed by signal %s)", status.Signal())
	}
	return fmt.Sprintf(" (exit status %d)", status.ExitStatus())
}

func (c Config) logTail(name string, lines int) string {
	raw, _ := os.ReadFile(c.path("logs", name+".log"))
	all := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// stop sends SIGTERM, waits up to grace, then kills.
func (c Config) stop(name string, grace time.Duration) error {
	pid := c.pid(name)
	defer func() { _ = os.Remove(c.pidFile(name)) }() // a stale one is ignored: pid checks the command line
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitGone(pid, grace) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if !waitGone(pid, 5*time.Second) {
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", name, pid)
	}
	return nil
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || isZombie(stat) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killMatching kills every process whose command line contains one of
// needles, for processes that are no daemon of ours but belong to the
// cluster (containerd's shims). It returns what it killed.
func killMatching(needles ...string) []string {
	var killed []string
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, n := range needles {
			if bytes.Contains(cmdline, []byte(n)) {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed = append(killed, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
					waitGone(pid, 5*time.Second)
				}
				break
			}
		}
	}
	return killed
}

// run runs a short host command and returns its combined output.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return string(out), fmt.Errorf("%s: %w", name, err)
	}
	return string(out), nil
}

func execCommand(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }
