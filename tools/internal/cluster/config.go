package cluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"code.cloudfoundry.org/quarks-job/tools/internal/pki"
)

// writeState creates the cluster's certificates, kubeconfigs and component
// configuration files from scratch.
func (c Config) writeState() error {
	for _, d := range []string{"pki", "config", "config/cni", "logs", "pids", "kubelet", "pod-logs"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	if err := c.writePKI(); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	files := map[string]string{
		c.conf("containerd.toml"):          c.containerdConfig(),
		c.conf("cni/10-quarks.conflist"):   cniConfig(),
		c.conf("kubelet.yaml"):             c.kubeletConfig(),
		c.conf("kube-proxy.yaml"):          c.proxyConfig(),
		c.conf("Corefile"):                 c.corefile(),
		c.conf("resolv.conf"):              "nameserver " + NodeIP + "\n",
		filepath.Join(c.Dir, "registries"): strings.Join(MirroredRegistries, "\n") + "\n",
	}
	for _, r := range MirroredRegistries {
		files[c.conf("certs.d/"+r+"/hosts.toml")] = fmt.Sprintf(
			"# Every pull of %s goes to the local registry, never to the internet.\nserver = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
			r, c.Registry, c.Registry)
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) writePKI() error {
	dir := c.path("pki")
	ca, err := pki.NewCA(dir, "ca")
	if err != nil {
		return err
	}
	nodeIP := net.ParseIP(NodeIP)
	certs := map[string]pki.Cert{
		"apiserver": {
			CommonName: "kube-apiserver", Server: true,
			IPs: []net.IP{nodeIP, net.ParseIP(APIServiceIP), net.ParseIP("127.0.0.1")},
			DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc." + ClusterDomain},
		},
		"apiserver-kubelet-client": {CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true},
		"admin":                    {CommonName: "quarks-cluster-admin", Organization: []string{"system:masters"}, Client: true},
		"controller-manager":       {CommonName: "system:kube-controller-manager", Client: true},
		"scheduler":                {CommonName: "system:kube-scheduler", Client: true},
		"kube-proxy":               {CommonName: "system:kube-proxy", Client: true},
		"kubelet-client":           {CommonName: "system:node:" + NodeName, Organization: []string{"system:nodes"}, Client: true},
		"kubelet":                  {CommonName: NodeName, Server: true, IPs: []net.IP{nodeIP}, DNSNames: []string{NodeName}},
	}
	for name, cert := range certs {
		if err := ca.Issue(dir, name, cert); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := pki.NewSigningKey(dir, "service-account"); err != nil {
		return err
	}
	server := "https://" + net.JoinHostPort(NodeIP, APIPort)
	kubeconfigs := map[string]string{
		c.Kubeconfig():                          "admin",
		c.conf("controller-manager.kubeconfig"): "controller-manager",
		c.conf("scheduler.kubeconfig"):          "scheduler",
		c.conf("kube-proxy.kubeconfig"):         "kube-proxy",
		c.conf("kubelet.kubeconfig"):            "kubelet-client",
	}
	for path, cert := range kubeconfigs {
		if err := pki.WriteKubeconfig(path, server, dir, cert); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) containerdConfig() string {
	return fmt.Sprintf(`# containerd for the local cluster: its own root, state, socket and CNI
# configuration, so it never meets another containerd on the machine.
version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # root here lacks CAP_SYS_RESOURCE: runc cannot set a negative oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, c.path("containerd"), filepath.Join(RunDir, "containerd"), containerdSocket(), containerdSocket()+".ttrpc",
		c.path("containerd", "opt"), SandboxImage, c.conf("cni"), c.conf("certs.d"))
}

func cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "quarks-cluster",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`, Bridge, filepath.Join(RunDir, "ipam"), PodSubnet, NodeIP)
}

func (c Config) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
tlsCertFile: %q
tlsPrivateKeyFile: %q
containerRuntimeEndpoint: unix://%s
# The machines run cgroup v1 (hybrid); the kubelet only warns with this.
failCgroupV1: false
cgroupDriver: cgroupfs
clusterDNS: [%s]
clusterDomain: %s
resolvConf: %q
podLogsDir: %q
podCIDR: %s
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
staticPodPath: ""
rotateCertificates: false
serverTLSBootstrap: false
`, NodeIP, c.pki("ca.crt"), c.pki("kubelet.crt"), c.pki("kubelet.key"), containerdSocket(), DNSServiceIP,
		ClusterDomain, c.conf("resolv.conf"), c.path("pod-logs"), PodSubnet)
}

func (c Config) proxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
mode: iptables
hostnameOverride: %s
clusterCIDR: %s
bindAddress: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["%s/32"]
iptables:
  # otherwise kube-proxy turns on route_localnet
  localhostNodePorts: false
conntrack:
  # 0 leaves the machine's conntrack settings as they are
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, c.conf("kube-proxy.kubeconfig"), NodeName, ClusterCIDR, NodeIP, NodeIP)
}

func (c Config) corefile() string {
	return fmt.Sprintf(`%[2]s in-addr.arpa ip6.arpa {
    bind %[1]s
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes %[2]s in-addr.arpa ip6.arpa {
        kubeconfig %[3]s
        pods insecure
    }
    cache 30
}

# The cluster has no upstream resolver: no other name exists.
. {
    bind %[1]s
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`, NodeIP, ClusterDomain, c.Kubeconfig())
}
