package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TouchedSysctls are the kernel settings that the kubelet, kube-proxy and
// the CNI bridge plugin change (or this package sets for them). They are
// saved before the cluster starts and restored when it stops.
var TouchedSysctls = []string{
	"net.ipv4.ip_forward",
	"net.ipv6.conf.all.forwarding",
	"net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables",
	"net.ipv4.conf.all.route_localnet",
	"net.netfilter.nf_conntrack_max",
	"net.netfilter.nf_conntrack_tcp_timeout_established",
	"net.netfilter.nf_conntrack_tcp_timeout_close_wait",
	"vm.overcommit_memory",
	"vm.panic_on_oom",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
}

// hostState is what the machine looked like before the cluster started.
type hostState struct {
	Sysctls map[string]string `json:"sysctls"`
	// NetNS are the named network namespaces that existed before.
	NetNS []string `json:"netns"`
}

// hostStateFile lives with the machine's runtime state, not in the
// checkout: a run killed without teardown is cleaned up by the next start
// from any checkout, which must find the original settings.
func (c Config) hostStateFile() string { return filepath.Join(RunDir, "host-state.json") }

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// saveHostState records the machine's settings, unless a record from an
// earlier start that was never torn down exists: that one is the original.
func (c Config) saveHostState() error {
	if _, err := os.Stat(c.hostStateFile()); err == nil {
		return nil
	}
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return err
	}
	state := hostState{Sysctls: map[string]string{}, NetNS: netnsNames()}
	for _, name := range TouchedSysctls {
		if raw, err := os.ReadFile(sysctlPath(name)); err == nil {
			state.Sysctls[name] = strings.TrimSpace(string(raw))
		}
	}
	raw, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.hostStateFile(), raw, 0o644)
}

func (c Config) loadHostState() (*hostState, error) {
	raw, err := os.ReadFile(c.hostStateFile())
	if err != nil {
		return nil, err
	}
	var state hostState
	return &state, json.Unmarshal(raw, &state)
}

func (s *hostState) restoreSysctls() error {
	var errs []error
	for name, value := range s.Sysctls {
		current, err := os.ReadFile(sysctlPath(name))
		if err == nil && strings.TrimSpace(string(current)) == value {
			continue
		}
		if err := os.WriteFile(sysctlPath(name), []byte(value), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore %s=%s: %w", name, value, err))
		}
	}
	return errors.Join(errs...)
}

func setSysctl(name, value string) error {
	return os.WriteFile(sysctlPath(name), []byte(value), 0o644)
}

func netnsNames() []string {
	entries, _ := os.ReadDir("/run/netns")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// setUpNetwork creates the pod bridge with the node's address and a guard
// chain that drops whatever pods would forward off the bridge.
func setUpNetwork() error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", Bridge)); err != nil {
		if _, err := run("ip", "link", "add", Bridge, "type", "bridge"); err != nil {
			return err
		}
	}
	if _, err := run("ip", "addr", "replace", NodeIP+"/24", "dev", Bridge); err != nil {
		return err
	}
	if _, err := run("ip", "link", "set", Bridge, "up"); err != nil {
		return err
	}
	// Service addresses are the bridge's too: until kube-proxy's rules
	// translate them, the machine's default route must not carry them off.
	if _, err := run("ip", "route", "replace", ServiceCIDR, "dev", Bridge, "src", NodeIP); err != nil {
		return err
	}
	// Service traffic between two pods on the bridge must pass iptables.
	if err := setSysctl("net.bridge.bridge-nf-call-iptables", "1"); err != nil {
		return err
	}
	if err := setSysctl("net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	return iptablesRestore("iptables-restore", forwardRules())
}

// forwardRules is the guard chain, jumped to first from FORWARD. Traffic
// between pods on the bridge (also pod → Service → pod once kube-proxy has
// translated it) is accepted here, because a Docker daemon on the same
// machine sets the FORWARD policy to DROP; whatever pods would forward off
// the bridge is dropped, so pod traffic stays on the machine.
func forwardRules() string {
	chain := ChainPrefix + "-FORWARD"
	return fmt.Sprintf("*filter\n:%[1]s - [0:0]\n"+
		"-A %[1]s -i %[2]s -o %[2]s -j ACCEPT\n"+
		"-A %[1]s -i %[2]s ! -o %[2]s -j DROP\n"+
		"-I FORWARD 1 -j %[1]s\nCOMMIT\n", chain, Bridge)
}

func iptablesRestore(binary, rules string) error {
	cmd := execCommand(binary, "--noflush", "--wait")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s\n%s", binary, err, strings.TrimSpace(string(out)), rules)
	}
	return nil
}

// ownChain reports whether an iptables chain belongs to the cluster: those
// of kube-proxy and the kubelet (KUBE-), of the CNI plugins (CNI-) and ours.
func ownChain(name string) bool {
	return strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "CNI-") || strings.HasPrefix(name, ChainPrefix)
}

// cleanIPTables deletes every rule that jumps to one of the cluster's
// chains and then the chains themselves, leaving all other rules alone.
func cleanIPTables() error {
	var errs []error
	for _, family := range []string{"iptables", "ip6tables"} {
		dump, err := run(family + "-save")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		script := iptablesCleanup(dump)
		if script == "" {
			continue
		}
		if err := iptablesRestore(family+"-restore", script); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// iptablesCleanup turns an iptables-save dump into an iptables-restore
// --noflush script that removes the cluster's rules and chains.
func iptablesCleanup(dump string) string {
	var out strings.Builder
	var table string
	var deletes, chains []string
	flush := func() {
		if table == "" || (len(deletes) == 0 && len(chains) == 0) {
			return
		}
		fmt.Fprintf(&out, "*%s\n", table)
		for _, d := range deletes {
			fmt.Fprintln(&out, d)
		}
		for _, ch := range chains {
			fmt.Fprintf(&out, "-F %s\n", ch)
		}
		for _, ch := range chains {
			fmt.Fprintf(&out, "-X %s\n", ch)
		}
		fmt.Fprintln(&out, "COMMIT")
	}
	for _, line := range strings.Split(dump, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table, deletes, chains = strings.TrimPrefix(line, "*"), nil, nil
		case strings.HasPrefix(line, ":"):
			if name := strings.Fields(line[1:])[0]; ownChain(name) {
				chains = append(chains, name)
			}
		case strings.HasPrefix(line, "-A ") || strings.HasPrefix(line, "[") && strings.Contains(line, "] -A "):
			_, rule, _ := strings.Cut(line, "-A ")
			rule = "-A " + rule
			fields := strings.Fields(rule)
			if ownChain(fields[1]) {
				continue // flushed with its chain
			}
			for i, f := range fields {
				if (f == "-j" || f == "-g") && i+1 < len(fields) && ownChain(fields[i+1]) {
					deletes = append(deletes, "-D"+rule[2:])
					break
				}
			}
		case line == "COMMIT":
			flush()
			table = ""
		}
	}
	return out.String()
}

// mountsUnder returns the mount points below any of prefixes, deepest first.
func mountsUnder(prefixes ...string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var mounts []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 5 {
			continue
		}
		point := unescapeMount(fields[4])
		for _, p := range prefixes {
			if point == p || strings.HasPrefix(point, strings.TrimSuffix(p, "/")+"/") {
				mounts = append(mounts, point)
				break
			}
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unmountAll(prefixes ...string) error {
	var errs []error
	for range 3 {
		errs = nil
		for _, m := range mountsUnder(prefixes...) {
			if err := unix.Unmount(m, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
					errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
				}
			}
		}
		if len(mountsUnder(prefixes...)) == 0 {
			return nil
		}
	}
	if left := mountsUnder(prefixes...); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still mounted: %s", strings.Join(left, ", ")))
	}
	return errors.Join(errs...)
}

// cgroupMounts returns the mount points of every cgroup hierarchy.
func cgroupMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var mounts []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := scanner.Text()
		fields := strings.Fields(line)
		sep := strings.Index(line, " - ")
		if sep < 0 || len(fields) < 5 {
			continue
		}
		if fstype := strings.Fields(line[sep+3:])[0]; fstype == "cgroup" || fstype == "cgroup2" {
			mounts = append(mounts, unescapeMount(fields[4]))
		}
	}
	return mounts
}

// podCgroups returns the pod cgroup directories that exist, deepest first.
func podCgroups() []string {
	var dirs []string
	for _, m := range cgroupMounts() {
		root := filepath.Join(m, PodCgroup)
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs
}

// removePodCgroups kills what is left in the pods' cgroups and removes them.
func removePodCgroups() error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, dir := range podCgroups() {
			if raw, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
				for _, field := range strings.Fields(string(raw)) {
					if pid, err := strconv.Atoi(field); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			_ = os.Remove(dir)
		}
		left := podCgroups()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups left: %s", strings.Join(left, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// removeNetwork deletes the bridge and whatever veth is still attached.
func removeNetwork() error {
	var errs []error
	if entries, err := os.ReadDir(filepath.Join("/sys/class/net", Bridge, "brif")); err == nil {
		for _, e := range entries {
			if _, err := run("ip", "link", "del", e.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", Bridge)); err == nil {
		if _, err := run("ip", "link", "del", Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
