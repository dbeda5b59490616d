#!/usr/bin/env bash
# Build the stock-kernel guest: Debian 12 (bookworm) with Debian's own kernel
# (linux-image-ARCH) and its matching headers (linux-headers-ARCH), BCC, and
# the project's pinned Python dependencies in a --system-site-packages venv.
#
#   build-image.sh OUT_DIR PROJECT_ROOT [ARCH] [KERNEL]
#
# KERNEL is which of Debian's stock kernels boots the (always bookworm) user
# space, each with its own matching linux-headers package:
#   6.1   bookworm's linux-image-ARCH (default)
#   6.12  bookworm-backports' (the kernel of trixie)
#   5.10  bullseye's (security updates included)
# ARCH is a Debian architecture, amd64 (default) or arm64. A foreign one is
# built through qemu-user-static: its binfmt_misc entry is registered for the
# build (from qemu-user-static's own /usr/lib/binfmt.d file) when the host does
# not have it, and removed again at the end, so the host is left as it was.
#
# Writes OUT_DIR/{vmlinuz,initrd.img,rootfs.ext4,manifest.txt}. Called by ./run
# when the cached image for this recipe is missing; this file is part of the
# recipe hash, so editing it makes the next run rebuild.
set -euo pipefail

OUT="$1"
PROJECT="$2"
ARCH="${3:-amd64}"
KERNEL="${4:-6.1}"
MIRROR="${LABKIT_STOCK_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
WORK="$OUT.build"
ROOTFS="$WORK/root"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

say() { printf '[stock-kernel build] %s\n' "$*"; }

case "$ARCH" in amd64|arm64) ;; *) echo "build-image.sh: ARCH must be amd64 or arm64, not '$ARCH'" >&2; exit 2 ;; esac
# the suite each kernel comes from (empty: bookworm's own); its packages are
# named pkg/suite so that only the kernel comes from there, the rest from bookworm
case "$KERNEL" in
  6.1) KSUITE="" ;;
  6.12) KSUITE=bookworm-backports ;;
  5.10) KSUITE=bullseye ;;
  *) echo "build-image.sh: KERNEL must be 5.10, 6.1 or 6.12, not '$KERNEL'" >&2; exit 2 ;;
esac
KERNEL_PKGS=("linux-image-$ARCH${KSUITE:+/$KSUITE}" "linux-headers-$ARCH${KSUITE:+/$KSUITE}")
GUEST_PKGS=(initramfs-tools kmod
            python3-bpfcc bpfcc-tools libbpf1 bpftool iproute2 iputils-ping
            python3-venv python3-pip ca-certificates procps bpftrace
            clang libbpf-dev)

cleanup_mounts() {
  local m
  for m in dev/pts dev proc sys; do
    if mountpoint -q "$ROOTFS/$m" 2>/dev/null; then umount -l "$ROOTFS/$m" || true; fi
  done
}
# never delete through a mount (the chroot's /dev is the host's /dev)
safe_rm() {
  if grep -qF " $(readlink -f "$1")/" /proc/mounts; then
    echo "refusing to delete $1: something is still mounted under it" >&2; exit 1
  fi
  rm -rf --one-file-system "$1"
}
# a foreign architecture runs its binaries through qemu-user-static
BINFMT_ADDED=""
binfmt_cleanup() {
  if [ -n "$BINFMT_ADDED" ] && [ -e "/proc/sys/fs/binfmt_misc/$BINFMT_ADDED" ]; then
    echo -1 > "/proc/sys/fs/binfmt_misc/$BINFMT_ADDED" || true
  fi
}
trap 'cleanup_mounts; binfmt_cleanup' EXIT
if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
  QARCH=$([ "$ARCH" = arm64 ] && echo aarch64 || echo x86_64)
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$QARCH" ]; then
    conf="/usr/lib/binfmt.d/qemu-$QARCH.conf"
    [ -s "$conf" ] || { echo "no $conf: install qemu-user-static to build an $ARCH image" >&2; exit 1; }
    # F: the kernel opens the interpreter now, so it works inside the chroot too
    sed -E 's/:([A-Z]*)$/:\1F/; s/F+F$/F/' "$conf" > /proc/sys/fs/binfmt_misc/register
    BINFMT_ADDED="qemu-$QARCH"
    say "registered binfmt_misc qemu-$QARCH for this build (removed at the end)"
  fi
fi

cleanup_mounts
safe_rm "$WORK"
mkdir -p "$WORK"

say "debootstrap $SUITE $ARCH (minbase) from $MIRROR"
debootstrap --arch="$ARCH" --variant=minbase --include=ca-certificates "$SUITE" "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 || {
  tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }

# inside the chroot: no daemons, the host's DNS for apt and pip
printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
cat > "$ROOTFS/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SRC
case "$KSUITE" in
  bookworm-backports) echo "deb $MIRROR bookworm-backports main" >> "$ROOTFS/etc/apt/sources.list" ;;
  bullseye) printf '%s\n' "deb $MIRROR bullseye main" "deb $MIRROR bullseye-updates main" \
              "deb http://deb.debian.org/debian-security bullseye-security main" >> "$ROOTFS/etc/apt/sources.list" ;;
esac
mount -t proc proc "$ROOTFS/proc"
mount -t sysfs sysfs "$ROOTFS/sys"
mount --bind /dev "$ROOTFS/dev"
mount --bind /dev/pts "$ROOTFS/dev/pts"

# the initrd must find the root disk (virtio-blk, ext4) and the 9p shares
mkdir -p "$ROOTFS/etc/initramfs-tools/conf.d"
printf '%s\n' virtio_pci virtio_blk ext4 9pnet 9pnet_virtio 9p >> "$ROOTFS/etc/initramfs-tools/modules"
[ "$ARCH" = arm64 ] && echo virtio_mmio >> "$ROOTFS/etc/initramfs-tools/modules"
echo 'RESUME=none' > "$ROOTFS/etc/initramfs-tools/conf.d/resume"
echo 'MODULES=most' > "$ROOTFS/etc/initramfs-tools/conf.d/modules"

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
            LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

say "apt-get install ${GUEST_PKGS[*]}"
in_root apt-get update -qq > "$WORK/apt.log" 2>&1 || { tail -n 30 "$WORK/apt.log" >&2; exit 1; }
in_root apt-get install -y -qq --no-install-recommends "${GUEST_PKGS[@]}" >> "$WORK/apt.log" 2>&1 || {
  tail -n 40 "$WORK/apt.log" >&2; exit 1; }
say "apt-get install ${KERNEL_PKGS[*]} (kernel $KERNEL)"
in_root apt-get install -y -qq --no-install-recommends "${KERNEL_PKGS[@]}" >> "$WORK/apt.log" 2>&1 || {
  tail -n 40 "$WORK/apt.log" >&2; exit 1; }

KVER="$(ls -1 "$ROOTFS/lib/modules" | sort -V | tail -n 1)"
[ -n "$KVER" ] || { echo "no kernel installed in the image" >&2; exit 1; }
# (build is an absolute link: follow it inside the image, not on the host)
in_root test -e "/lib/modules/$KVER/build/include/generated/autoconf.h" || {
  echo "linux-headers for $KVER are not where BCC looks (/lib/modules/$KVER/build)" >&2; exit 1; }

# The project's own provisioning layout (scripts/setup.sh): the checkout at
# /opt/labkit (replaced by the current one at every run), its venv at
# /opt/labkit/.venv made from the system python3 with --system-site-packages,
# the pinned dependencies installed editable with the test extras, the stamp
# setup.sh compares (so that setup.sh inside the guest finds nothing to do),
# and the Jupyter kernel spec.
say "venv with the pinned dependencies of pyproject.toml"
mkdir -p "$ROOTFS/opt/labkit"
tar -C "$PROJECT" --exclude=./.venv --exclude=./.git --exclude=./test-artifacts -cf - . | tar -C "$ROOTFS/opt/labkit" -xf -
rm -rf "$ROOTFS/opt/labkit/labkit.egg-info" "$ROOTFS/opt/labkit/build"
in_root /usr/bin/python3 -m venv --system-site-packages /opt/labkit/.venv
# pip in the chroot trusts what the host trusts (a host behind a TLS-inspecting
# proxy has its CA only in its own bundle); the copy is removed afterwards
cp -L /etc/ssl/certs/ca-certificates.crt "$ROOTFS/tmp/host-ca-bundle.crt"
in_root PIP_CERT=/tmp/host-ca-bundle.crt /opt/labkit/.venv/bin/python -m pip install -q \
  --disable-pip-version-check --no-cache-dir -e "/opt/labkit[test,hub]" > "$WORK/pip.log" 2>&1 || {
  tail -n 40 "$WORK/pip.log" >&2; exit 1; }
rm -f "$ROOTFS/tmp/host-ca-bundle.crt"
echo "$(sha256sum "$PROJECT/pyproject.toml" | cut -d' ' -f1) test,hub" > "$ROOTFS/opt/labkit/.venv/.labkit-installed"
in_root /opt/labkit/.venv/bin/python -m ipykernel install --sys-prefix --name labkit \
  --display-name "labkit (eBPF, Python 3)" >/dev/null
in_root /opt/labkit/.venv/bin/python -c "import bcc, numpy, pandas, pytest; print('venv ok: bcc', bcc.__file__)"

install -m 0755 "$HERE/guest-init" "$ROOTFS/sbin/labkit-init"
echo stock-kernel-guest > "$ROOTFS/etc/hostname"

say "initramfs for $KVER"
in_root update-initramfs -u -k "$KVER" > "$WORK/initramfs.log" 2>&1 || { tail -n 30 "$WORK/initramfs.log" >&2; exit 1; }

{
  echo "built: $(date -u +%FT%TZ)"
  echo "kernel: $KVER"
  echo "arch: $ARCH"
  echo "kernel choice: $KERNEL${KSUITE:+ (from $KSUITE)}"
  in_root dpkg-query -W -f='${Package} ${Version}\n' "linux-image-$KVER" "linux-headers-$KVER" \
    "linux-image-$ARCH" "linux-headers-$ARCH" python3-bpfcc libbpf1 bpftool iproute2 python3
  in_root /opt/labkit/.venv/bin/python -m pip freeze --exclude-editable
} > "$WORK/manifest.txt"

cp -L "$ROOTFS/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp -L "$ROOTFS/boot/initrd.img-$KVER" "$WORK/initrd.img"

cleanup_mounts
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
: > "$ROOTFS/etc/resolv.conf"
rm -rf "$ROOTFS/var/cache/apt/archives/"*.deb "$ROOTFS/var/lib/apt/lists/"* "$ROOTFS/root/.cache"

# ext4 image from the directory (no loop mount); room to spare for the run
used_mb=$(du -sm "$ROOTFS" | cut -f1)
size_mb=$(( used_mb + used_mb / 4 + 1536 ))
say "rootfs.ext4 (${size_mb} MiB, ${used_mb} MiB used)"
mkfs.ext4 -q -F -L labkit-root -d "$ROOTFS" "$WORK/rootfs.ext4" "${size_mb}M"

safe_rm "$ROOTFS"
safe_rm "$OUT"
mv "$WORK" "$OUT"
say "done: $OUT"
