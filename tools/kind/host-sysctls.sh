#!/usr/bin/env bash
# The kubelet and kube-proxy in a kind node set kernel settings that are not
# per network namespace (kernel.panic, vm.overcommit_memory, conntrack
# limits, ...): with Docker they change the host's. The same list the local
# cluster saves and restores (tools/internal/cluster, TouchedSysctls).
#
#	host-sysctls.sh save FILE      record them, unless FILE exists (an earlier
#	                               cluster never torn down: that is the original)
#	host-sysctls.sh restore FILE   set them back and remove FILE
set -euo pipefail
names=(net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.bridge.bridge-nf-call-iptables
	net.bridge.bridge-nf-call-ip6tables net.ipv4.conf.all.route_localnet net.netfilter.nf_conntrack_max
	net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait
	vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
file=${2:?usage: host-sysctls.sh save|restore FILE}
case ${1:-} in
save)
	[[ -e $file ]] && exit 0
	mkdir -p "$(dirname "$file")"
	for n in "${names[@]}"; do
		v=$(sysctl -n "$n" 2>/dev/null) && echo "$n=$v"
	done >"$file.tmp"
	mv "$file.tmp" "$file"
	;;
restore)
	[[ -e $file ]] || exit 0
	while IFS='=' read -r n v; do
		[[ $(sysctl -n "$n" 2>/dev/null) == "$v" ]] || sysctl -q -w "$n=$v" || echo "could not restore $n=$v" >&2
	done <"$file"
	rm -f "$file"
	;;
*) echo "usage: host-sysctls.sh save|restore FILE" >&2; exit 2 ;;
esac
