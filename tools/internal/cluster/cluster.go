package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RegistryCommand returns the command that runs the image registry as a daemon:
// set by the cluster command to itself.
var RegistryCommand func(c Config) (path string, args []string)

// Order matters: Down stops them in reverse, the kubelet first.
var daemonNames = []string{"registry", "containerd", "etcd", "kube-apiserver", "kube-controller-manager",
	"kube-scheduler", "coredns", "kubelet", "kube-proxy"}

// Up starts the cluster and returns once its node is Ready, the default
// ServiceAccount exists and cluster DNS answers. A cluster that fails to
// come up is torn down again.
func Up(ctx context.Context, c Config, log io.Writer) (err error) {
	start := time.Now()
	step := func(format string, args ...any) {
		_, _ = fmt.Fprintf(log, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	if err := c.preflight(); err != nil {
		return err
	}
	for _, name := range daemonNames {
		if c.pid(name) != 0 {
			return fmt.Errorf("the cluster in %s is already running (%s); stop it first", c.Dir, name)
		}
	}
	if c.leftovers() {
		step("tearing down what an earlier run left")
		if err := Down(ctx, c, log); err != nil {
			return fmt.Errorf("an earlier run left state that cannot be removed: %w", err)
		}
	}
	if left := mountsUnder(c.Dir, RunDir); len(left) > 0 {
		return fmt.Errorf("refusing to wipe %s: still mounted: %s", c.Dir, strings.Join(left, ", "))
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	if err := c.saveHostState(); err != nil {
		return fmt.Errorf("save the machine's settings: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = fmt.Fprintf(log, "cluster start failed, tearing down; logs stay in %s\n", c.path("logs"))
			if downErr := Down(context.WithoutCancel(ctx), c, log); downErr != nil {
				err = errors.Join(err, fmt.Errorf("teardown: %w", downErr))
			}
		}
	}()
	if err := c.writeState(); err != nil {
		return err
	}
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return err
	}
	// A later Down from another checkout finds this run's mounts through it.
	if err := os.WriteFile(filepath.Join(RunDir, "state-dir"), []byte(c.Dir), 0o644); err != nil {
		return err
	}
	if err := setUpNetwork(); err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	step("certificates, configuration and bridge %s (%s) ready", Bridge, NodeIP)

	path, args := RegistryCommand(c)
	if err := c.start(daemon{name: "registry", path: path, args: args}); err != nil {
		return err
	}
	if err := c.start(daemon{name: "containerd", path: "containerd", args: []string{"--config", c.conf("containerd.toml")}}); err != nil {
		return err
	}
	if err := c.start(c.etcd()); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd", []string{"etcd"}, httpOK("http://"+EtcdClient+"/health")); err != nil {
		return err
	}
	if err := c.start(c.apiserver()); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "the image registry", []string{"registry"}, httpOK("http://"+c.Registry+"/v2/")); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "containerd", []string{"containerd"}, fileExists(containerdSocket())); err != nil {
		return err
	}
	client, err := c.client()
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-apiserver /readyz", []string{"kube-apiserver"}, func(ctx context.Context) (bool, error) {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, err
	}); err != nil {
		return err
	}
	step("etcd, kube-apiserver, containerd and the registry (%s) ready", c.Registry)
	for _, d := range []daemon{c.controllerManager(), c.scheduler(), c.kubelet(), c.proxy(),
		{name: "coredns", path: c.CoreDNS, args: []string{"-conf", c.conf("Corefile")}}} {
		if err := c.start(d); err != nil {
			return err
		}
	}
	if err := c.waitFor(ctx, "the kube-dns Service", nil, func(ctx context.Context) (bool, error) {
		err := createDNSService(ctx, client)
		return err == nil, err
	}); err != nil {
		return err
	}
	all := slices.Clone(daemonNames)
	if err := c.waitFor(ctx, "node "+NodeName+" Ready", all, nodeReady(client)); err != nil {
		return err
	}
	step("node %s Ready", NodeName)
	if err := c.waitFor(ctx, "the default ServiceAccount", all, defaultServiceAccount(client)); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "cluster DNS through the kube-dns Service", all, dnsAnswers); err != nil {
		return err
	}
	step("default ServiceAccount and cluster DNS ready")
	_, _ = fmt.Fprintf(log, "cluster up in %.1fs; kubeconfig: %s\n", time.Since(start).Seconds(), c.Kubeconfig())
	return nil
}

// Down stops the cluster and removes what it left on the machine: pod
// sandboxes, processes, cgroups, iptables rules, mounts, network namespaces
// and devices; then it restores the kernel settings it found. It keeps going
// after an error and reports them all.
func Down(ctx context.Context, c Config, log io.Writer) error {
	start := time.Now()
	state, stateErr := c.loadHostState()
	var errs []error
	add := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	add("stop kubelet", c.stop("kubelet", 20*time.Second))
	if c.pid("containerd") != 0 {
		add("remove pod sandboxes", removeSandboxes(ctx))
	}
	for i := len(daemonNames) - 1; i >= 0; i-- {
		if name := daemonNames[i]; name != "registry" {
			add("stop "+name, c.stop(name, 10*time.Second))
		}
	}
	if killed := killMatching(containerdSocket()); len(killed) > 0 {
		_, _ = fmt.Fprintf(log, "killed processes left by containerd:\n  %s\n", strings.Join(killed, "\n  "))
	}
	add("remove pod cgroups", removePodCgroups())
	add("remove iptables rules", cleanIPTables())
	mountPrefixes := []string{c.Dir, RunDir}
	if owner, err := os.ReadFile(filepath.Join(RunDir, "state-dir")); err == nil && filepath.IsAbs(string(owner)) && filepath.Clean(string(owner)) != "/" {
		mountPrefixes = append(mountPrefixes, string(owner))
	}
	var newNetNS []string
	if stateErr == nil {
		for _, ns := range netnsNames() {
			if !slices.Contains(state.NetNS, ns) {
				newNetNS = append(newNetNS, filepath.Join("/run/netns", ns))
			}
		}
		mountPrefixes = append(mountPrefixes, newNetNS...)
	}
	add("unmount", unmountAll(mountPrefixes...))
	for _, ns := range newNetNS {
		add("remove network namespace", os.Remove(ns))
	}
	add("remove network devices", removeNetwork())
	add("stop registry", c.stop("registry", 5*time.Second))
	if stateErr == nil {
		add("restore kernel settings", state.restoreSysctls())
	}
	if len(errs) == 0 {
		// Keep logs and certificates for a look after the fact; the data
		// directories go, and with them what a running cluster held.
		for _, d := range []string{"etcd", "containerd", "kubelet", "pod-logs", "pids"} {
			add("remove "+d, os.RemoveAll(c.path(d)))
		}
		add("remove "+RunDir, os.RemoveAll(RunDir))
	}
	if len(errs) == 0 {
		_, _ = fmt.Fprintf(log, "cluster down in %.1fs\n", time.Since(start).Seconds())
	}
	return errors.Join(errs...)
}

// leftovers reports whether an earlier run, from this folder or another
// checkout, left state on the machine: a run that was killed instead of
// stopped.
func (c Config) leftovers() bool {
	for _, path := range []string{c.hostStateFile(), RunDir, filepath.Join("/sys/class/net", Bridge)} {
		if _, err := os.Stat(path); err == nil {
			return true
		}
	}
	return false
}

func (c Config) preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("the local cluster needs root (it runs containerd and the kubelet)")
	}
	var missing []string
	for _, f := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(c.Assets, f)); err != nil {
			missing = append(missing, filepath.Join(c.Assets, f))
		}
	}
	if _, err := os.Stat(c.CoreDNS); err != nil {
		missing = append(missing, c.CoreDNS)
	}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "runc", "iptables-restore", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		missing = append(missing, "/usr/lib/cni/bridge (Debian package containernetworking-plugins)")
	}
	if _, err := os.Stat(filepath.Join(c.Images, "pause.tar")); err != nil {
		missing = append(missing, filepath.Join(c.Images, "pause.tar")+" (the images tool builds it)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing: %s", strings.Join(missing, ", "))
	}
	return nil
}

func httpOK(url string) func(context.Context) (bool, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("%s: %s", url, resp.Status)
	}
}

func fileExists(path string) func(context.Context) (bool, error) {
	return func(context.Context) (bool, error) {
		_, err := os.Stat(path)
		return err == nil, err
	}
}

func (c Config) etcd() daemon {
	return daemon{name: "etcd", path: filepath.Join(c.Assets, "etcd"), args: []string{
		"--name=quarks", "--data-dir=" + c.path("etcd"),
		"--listen-client-urls=http://" + EtcdClient, "--advertise-client-urls=http://" + EtcdClient,
		"--listen-peer-urls=http://" + EtcdPeer, "--initial-advertise-peer-urls=http://" + EtcdPeer,
		"--initial-cluster=quarks=http://" + EtcdPeer, "--unsafe-no-fsync", "--log-level=warn",
	}}
}

func (c Config) apiserver() daemon {
	return daemon{name: "kube-apiserver", path: filepath.Join(c.Assets, "kube-apiserver"), args: []string{
		"--etcd-servers=http://" + EtcdClient,
		"--bind-address=" + NodeIP, "--advertise-address=" + NodeIP, "--secure-port=" + APIPort,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--cert-dir=" + c.path("pki"),
		"--tls-cert-file=" + c.pki("apiserver.crt"), "--tls-private-key-file=" + c.pki("apiserver.key"),
		"--client-ca-file=" + c.pki("ca.crt"),
		"--kubelet-client-certificate=" + c.pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + c.pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority=" + c.pki("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc." + ClusterDomain,
		"--service-account-key-file=" + c.pki("service-account.pub"),
		"--service-account-signing-key-file=" + c.pki("service-account.key"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--profiling=false",
	}}
}

func (c Config) controllerManager() daemon {
	kubeconfig := c.conf("controller-manager.kubeconfig")
	return daemon{name: "kube-controller-manager", path: filepath.Join(c.Assets, "kube-controller-manager"), args: []string{
		"--kubeconfig=" + kubeconfig, "--authentication-kubeconfig=" + kubeconfig, "--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1", "--leader-elect=false", "--cluster-name=quarks",
		"--cert-dir=" + c.path("pki", "controller-manager"),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--cluster-signing-cert-file=" + c.pki("ca.crt"), "--cluster-signing-key-file=" + c.pki("ca.key"),
		"--root-ca-file=" + c.pki("ca.crt"),
		"--service-account-private-key-file=" + c.pki("service-account.key"),
		"--use-service-account-credentials=true",
		"--profiling=false",
	}}
}

func (c Config) scheduler() daemon {
	kubeconfig := c.conf("scheduler.kubeconfig")
	return daemon{name: "kube-scheduler", path: filepath.Join(c.Assets, "kube-scheduler"), args: []string{
		"--kubeconfig=" + kubeconfig, "--authentication-kubeconfig=" + kubeconfig, "--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false",
		"--cert-dir=" + c.path("pki", "scheduler"),
	}}
}

func (c Config) kubelet() daemon {
	return daemon{name: "kubelet", path: filepath.Join(c.Assets, "kubelet"), args: []string{
		"--config=" + c.conf("kubelet.yaml"), "--kubeconfig=" + c.conf("kubelet.kubeconfig"),
		"--root-dir=" + c.path("kubelet"), "--cert-dir=" + c.path("kubelet", "pki"),
		"--hostname-override=" + NodeName, "--node-ip=" + NodeIP,
	}}
}

func (c Config) proxy() daemon {
	return daemon{name: "kube-proxy", path: filepath.Join(c.Assets, "kube-proxy"), args: []string{
		"--config=" + c.conf("kube-proxy.yaml"),
	}}
}
