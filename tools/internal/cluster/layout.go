// Package cluster starts and stops a single-node Kubernetes cluster made of
// local processes: etcd, the control plane, containerd, the kubelet,
// kube-proxy, CoreDNS and a registry that serves images to containerd.
//
// Every address the cluster uses is on loopback or on the bridge it creates
// itself; pods cannot forward traffic off the node.
package cluster

import (
	"path/filepath"
	"time"
)

// Addresses and names of the cluster. The node's address is the gateway of
// the pod bridge, which the cluster creates before anything starts, so pods
// reach the API server and DNS without any traffic leaving the machine.
const (
	NodeName      = "quarks-node"
	Bridge        = "qjob0"
	NodeIP        = "10.244.0.1"
	PodSubnet     = "10.244.0.0/24"
	ClusterCIDR   = "10.244.0.0/16"
	ServiceCIDR   = "10.96.0.0/16"
	APIServiceIP  = "10.96.0.1"
	DNSServiceIP  = "10.96.0.10"
	ClusterDomain = "cluster.local"
	APIPort       = "6443"
	EtcdClient    = "127.0.0.1:23790"
	EtcdPeer      = "127.0.0.1:23800"

	// RunDir holds sockets and runtime state: unix socket paths must stay
	// short, so they cannot live in a checkout's bin/ folder.
	RunDir = "/run/quarks-job-cluster"

	// PodCgroup is the cgroup (in every hierarchy) under which the kubelet
	// puts pods; teardown removes it.
	PodCgroup = "kubepods"

	// ChainPrefix names the iptables chains this cluster creates itself.
	ChainPrefix = "QUARKS-CLUSTER"

	// SandboxImage is the pause image; the images tool builds it.
	SandboxImage = "registry.k8s.io/pause:3.10"
)

// MirroredRegistries are the registries whose images containerd pulls from
// the local registry instead. There is no fallback to the real registries.
var MirroredRegistries = []string{"docker.io", "registry.k8s.io", "ghcr.io", "quay.io"}

// Config says where the cluster's binaries are and where its state goes.
type Config struct {
	// Dir holds certificates, configuration, data, logs and the kubeconfig.
	Dir string
	// Assets holds etcd and the Kubernetes binaries (bin/kube).
	Assets string
	// CoreDNS is the path of the coredns binary.
	CoreDNS string
	// Images holds image tarballs that the registry serves from its start.
	Images string
	// Registry is the registry's listen address, a loopback address.
	Registry string
	// Timeout bounds each wait for a component.
	Timeout time.Duration
}

func (c Config) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

// Kubeconfig is the path of the cluster administrator's kubeconfig.
func (c Config) Kubeconfig() string { return c.path("kubeconfig") }

func (c Config) pki(name string) string  { return c.path("pki", name) }
func (c Config) conf(name string) string { return c.path("config", name) }

func containerdSocket() string { return filepath.Join(RunDir, "containerd.sock") }
