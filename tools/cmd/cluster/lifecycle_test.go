//go:build localcluster

// The lifecycle test needs root and the built cluster, and brings the local
// cluster up and down twice: `make test-e2e-local` runs it (build tag
// localcluster) after the e2e suite.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"code.cloudfoundry.org/quarks-job/tools/internal/cluster"
)

func TestLifecycle(t *testing.T) {
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(repo, "bin", "cluster")
	kubectl := filepath.Join(repo, "bin", "kube", "kubectl")
	runMake := func(target string) time.Duration {
		t.Helper()
		start := time.Now()
		cmd := exec.Command("make", "--no-print-directory", "-C", repo, target)
		cmd.Env = append(os.Environ(), "MAKEFLAGS=", "MAKELEVEL=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return time.Since(start)
	}

	runMake("cluster-down")
	dropForwardLikeDocker(t)
	before := takeSnapshot(t, stateDir)
	for round := 1; round <= 2; round++ {
		took := runMake("cluster-up")
		t.Logf("round %d: make cluster-up took %s", round, took.Round(100*time.Millisecond))
		during := takeSnapshot(t, stateDir)
		if len(during["process"]) == 0 || !slices.Contains(during["link"], cluster.Bridge) {
			t.Fatalf("round %d: the snapshot sees no cluster process or bridge while the cluster runs: %v", round, during)
		}
		runPod(t, kubectl, filepath.Join(stateDir, "kubeconfig"), fmt.Sprintf("smoke-%d", round))
		reachService(t, kubectl, filepath.Join(stateDir, "kubeconfig"), fmt.Sprintf("web-%d", round))
		took = runMake("cluster-down")
		t.Logf("round %d: make cluster-down took %s", round, took.Round(100*time.Millisecond))
		after := takeSnapshot(t, stateDir)
		for kind, entries := range after {
			for _, e := range entries {
				if !slices.Contains(before[kind], e) {
					t.Errorf("round %d: cluster-down left a %s behind: %s", round, kind, e)
				}
			}
		}
		for kind, entries := range before {
			for _, e := range entries {
				if !slices.Contains(after[kind], e) {
					t.Errorf("round %d: after cluster-down a %s that was there before is gone: %s", round, kind, e)
				}
			}
		}
	}
}

// dropForwardLikeDocker sets the FORWARD policy to DROP for the test, as a
// Docker daemon on the machine does, so that the cluster's pod → Service
// traffic is shown to work beside Docker whether or not one runs here.
func dropForwardLikeDocker(t *testing.T) {
	t.Helper()
	out, err := exec.Command("iptables", "-S", "FORWARD").Output()
	if err != nil {
		t.Fatalf("iptables -S FORWARD: %v", err)
	}
	if strings.Contains(string(out), "-P FORWARD DROP") {
		t.Log("the FORWARD policy is already DROP (a Docker daemon runs here)")
		return
	}
	if out, err := exec.Command("iptables", "-P", "FORWARD", "DROP").CombinedOutput(); err != nil {
		t.Fatalf("iptables -P FORWARD DROP: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("iptables", "-P", "FORWARD", "ACCEPT").CombinedOutput(); err != nil {
			t.Errorf("restore the FORWARD policy: %v\n%s", err, out)
		}
	})
}

// reachService checks that a pod reaches another pod through its Service:
// the path the persister's upload takes to the controller.
func reachService(t *testing.T, kubectl, kubeconfig, name string) {
	t.Helper()
	k := func(args ...string) string {
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	k("run", name, "--image=busybox", "--restart=Never", "--port=8080", "--expose",
		"--", "sh", "-c", "mkdir -p /www && echo served-by-"+name+" > /www/index.html && exec httpd -f -p 8080 -h /www")
	k("wait", "--for=condition=Ready", "--timeout=120s", "pod/"+name)
	ip := strings.TrimSpace(k("get", "service", name, "-o", "jsonpath={.spec.clusterIP}"))
	// The Service's rules appear a moment after the server is ready, so the
	// client tries for a while (Debian's static busybox wget crashes with
	// -T; timeout bounds each try instead).
	client := name + "-client"
	k("run", client, "--image=busybox", "--restart=Never", "--", "sh", "-c",
		"for i in $(seq 1 30); do timeout 5 wget -q -O - http://"+ip+":8080/ && exit 0; sleep 1; done; exit 1")
	k("wait", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s", "pod/"+client)
	if logs := k("logs", client); !strings.Contains(logs, "served-by-"+name) {
		t.Fatalf("pod %s reached Service %s and got %q", client, name, logs)
	}
}

// runPod checks that the cluster runs a pod to completion.
func runPod(t *testing.T, kubectl, kubeconfig, name string) {
	t.Helper()
	k := func(args ...string) string {
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	k("run", name, "--image=busybox", "--restart=Never", "--", "echo", "pod "+name+" ran")
	k("wait", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s", "pod/"+name)
	if logs := k("logs", name); !strings.Contains(logs, "pod "+name+" ran") {
		t.Fatalf("pod %s logged %q", name, logs)
	}
}

// takeSnapshot lists what the cluster could leave on the machine, by kind:
// its processes, mounts, network devices and namespaces, iptables rules,
// pod cgroups and the kernel settings it changes.
func takeSnapshot(t *testing.T, stateDir string) map[string][]string {
	t.Helper()
	s := map[string][]string{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || p.Name() == fmt.Sprint(os.Getpid()) {
			continue
		}
		cgroups, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cgroup"))
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(line, stateDir) || strings.Contains(line, cluster.RunDir) ||
			strings.Contains(string(cgroups), "/"+cluster.PodCgroup) {
			s["process"] = append(s["process"], p.Name()+" "+line)
		}
	}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		scanner := bufio.NewScanner(f)
		for scanner.Scan() {
			if fields := strings.Fields(scanner.Text()); len(fields) > 4 {
				s["mount"] = append(s["mount"], fields[4])
			}
		}
		_ = f.Close()
	}
	for kind, dir := range map[string]string{"link": "/sys/class/net", "network namespace": "/run/netns"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			s[kind] = append(s[kind], e.Name())
		}
	}
	counters := regexp.MustCompile(`\[\d+:\d+\]`)
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(save).Output()
		if err != nil {
			t.Fatalf("%s: %v", save, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				s["iptables rule"] = append(s["iptables rule"], save+": "+counters.ReplaceAllString(line, ""))
			}
		}
	}
	cgroupDirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + cluster.PodCgroup)
	s["cgroup"] = cgroupDirs
	for _, name := range cluster.TouchedSysctls {
		if raw, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))); err == nil {
			s["kernel setting"] = append(s["kernel setting"], name+"="+strings.TrimSpace(string(raw)))
		}
	}
	return s
}
