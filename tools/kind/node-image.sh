#!/usr/bin/env bash
# Builds the kind node image offline: a Debian root filesystem
# (debootstrap; systemd, containerd, runc, CNI plugins, iptables, nftables)
# with the Kubernetes binaries built from Go modules (tools/kube), the files
# and entrypoint `kind create cluster` relies on (tools/kind/node), and the
# control-plane images built by tools/cmd/images, imported into containerd at
# the node's first boot. The image is tagged by a hash of all its inputs: a
# second run with the same inputs only checks the hash. Needs root
# (debootstrap, chroot) and Docker (docker import).
#
# Environment (mk/kind.mk sets it): KUBE_VERSION, KUBE_BIN (kube, kubeadm,
# etcd), COREDNS, PAUSE, IMAGES_TOOL, OUT (work folder), NODE_REPO (the
# image's repository), DEBIAN_SUITE, DEBIAN_MIRROR, NODE_PACKAGES.
# Prints the image's tag and writes it to $OUT/node-image.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${KUBE_VERSION:?}" "${KUBE_BIN:?}" "${COREDNS:?}" "${PAUSE:?}" "${IMAGES_TOOL:?}" "${OUT:?}"
NODE_REPO=${NODE_REPO:-quarks-job/kind-node}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
NODE_PACKAGES=${NODE_PACKAGES:-systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,nftables,iproute2,conntrack,socat,ethtool,kmod,mount,util-linux,procps,ca-certificates,libseccomp2,ebtables,e2fsprogs}

step() { echo "--- kind-node-image: $*" >&2; }
sum() { sha256sum | cut -c1-16; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# 1. The Debian root filesystem, cached by suite, mirror and package list.
rootfs_key=$(printf '%s\n' "$DEBIAN_SUITE" "$DEBIAN_MIRROR" "$NODE_PACKAGES" | sum)
rootfs=$OUT/rootfs-$rootfs_key
if [[ ! -e $rootfs.done ]]; then
	command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
	step "debootstrap $DEBIAN_SUITE (first time: about 1-6 minutes)"
	rm -rf "$rootfs"
	debootstrap --variant=minbase --include="$NODE_PACKAGES" "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 ||
		{ tail -20 "$rootfs.log" >&2; exit 1; }
	touch "$rootfs.done"
fi

# 2. The image's tag: a hash of every input.
tag_key=$( {
	echo "$KUBE_VERSION $rootfs_key"
	sha256sum "${BASH_SOURCE[0]}" "$KUBE_BIN/kube" "$KUBE_BIN/kubeadm" "$KUBE_BIN/etcd" "$COREDNS" "$PAUSE" "$IMAGES_TOOL" | cut -d' ' -f1
	(cd "$here/node" && find . -type f -o -type l | LC_ALL=C sort | xargs sha256sum)
} | sum)
image=$NODE_REPO:$KUBE_VERSION-$tag_key
if docker image inspect "$image" >/dev/null 2>&1; then
	step "$image is up to date"
	echo "$image" | tee "$OUT/node-image"
	exit 0
fi

# 3. The node's tree: the root filesystem, our files, the binaries.
stage=$OUT/node-stage
rm -rf "$stage"
step "assembling the node's root filesystem"
cp -a "$rootfs" "$stage"
cp -a "$here/node/." "$stage/"
install -m 0755 "$KUBE_BIN/kube" "$stage/usr/bin/kube"
for c in kubelet kubectl; do ln -sf kube "$stage/usr/bin/$c"; done
install -m 0755 "$KUBE_BIN/kubeadm" "$stage/usr/bin/kubeadm"
echo "$KUBE_VERSION" >"$stage/kind/version"

images=$("$KUBE_BIN/kubeadm" config images list --kubernetes-version "$KUBE_VERSION")
image_of() { grep -E "/$1:" <<<"$images"; }
pause_image=$(image_of pause)
sed -i "s|@PAUSE_IMAGE@|$pause_image|" "$stage/etc/containerd/config.toml"

# 4. The control-plane images, in /kind/images for kind-images.service.
step "control-plane images"
work=$OUT/image-trees
rm -rf "$work" && mkdir -p "$work" "$stage/kind/images"
# kube-apiserver, -controller-manager, -scheduler and -proxy: one image (the
# multi-call binary and a symlink per component; static pods and the
# kube-proxy DaemonSet name the command), with nft and the libraries it
# loads for kube-proxy's nftables mode.
kube=$work/kube
mkdir -p "$kube/usr/local/bin" "$kube/usr/sbin"
install -m 0755 "$KUBE_BIN/kube" "$kube/usr/local/bin/kube"
for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do ln -s kube "$kube/usr/local/bin/$c"; done
install -m 0755 "$stage/usr/sbin/nft" "$kube/usr/sbin/nft"
for lib in $(chroot "$stage" ldd /usr/sbin/nft | grep -o '/[^ ]*'); do
	mkdir -p "$kube$(dirname "$lib")"
	cp -L "$stage$lib" "$kube$lib"
done
"$IMAGES_TOOL" dir --out "$stage/kind/images/kube.tar" "$kube" \
	$(image_of kube-apiserver) $(image_of kube-controller-manager) $(image_of kube-scheduler) $(image_of kube-proxy)
mkdir -p "$work/etcd/usr/local/bin" "$work/coredns" "$work/pause"
install -m 0755 "$KUBE_BIN/etcd" "$work/etcd/usr/local/bin/etcd"
"$IMAGES_TOOL" dir --out "$stage/kind/images/etcd.tar" "$work/etcd" $(image_of etcd)
install -m 0755 "$COREDNS" "$work/coredns/coredns"
"$IMAGES_TOOL" dir --out "$stage/kind/images/coredns.tar" --entrypoint /coredns "$work/coredns" $(image_of coredns)
install -m 0755 "$PAUSE" "$work/pause/pause"
"$IMAGES_TOOL" dir --out "$stage/kind/images/pause.tar" --entrypoint /pause "$work/pause" "$pause_image"

# 5. Services: containerd, the image import, kubelet, the pod network.
step "services"
chroot "$stage" systemctl enable containerd.service kind-images.service kubelet.service kind-cni.service >/dev/null 2>&1
chroot "$stage" systemctl mask systemd-binfmt.service getty.target console-getty.service >/dev/null 2>&1
mkdir -p "$stage/etc/kubernetes/manifests" "$stage/etc/cni/net.d"
echo "ReadKMsg=no" >>"$stage/etc/systemd/journald.conf"
rm -f "$stage/etc/machine-id" && touch "$stage/etc/machine-id"

# 6. The image.
step "docker import $image"
tar -C "$stage" -c . | docker import \
	-c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
	-c 'ENV container=docker' \
	-c "LABEL io.x-k8s.kind.version=$KUBE_VERSION" \
	- "$image" >/dev/null
rm -rf "$stage" "$work"
# Older builds of the node image are of no use any more.
docker images "$NODE_REPO" --format '{{.Repository}}:{{.Tag}}' | grep -vxF "$image" | xargs -r docker rmi >/dev/null || true
echo "$image" | tee "$OUT/node-image"
