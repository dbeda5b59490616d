#!/usr/bin/env bash
# The Debian packages of the single-user image (Dockerfile), one per line:
# the class server's VM image's own list (GUEST_PKGS of
# tests/stock_kernel/build-image.sh, read from there, never copied) and
# Debian's generic kernel headers (linux-headers-ARCH: the pod's kernel is
# Kata's, which has no header package; BCC compiles with these, as on any
# kernel without one: scripts/setup.sh).
#
#   guest-packages.sh BUILD_IMAGE_SH [ARCH]
set -euo pipefail
builder="${1:?usage: guest-packages.sh BUILD_IMAGE_SH [ARCH]}"
arch="${2:-amd64}"
case "$arch" in amd64|arm64) ;; *) echo "guest-packages.sh: ARCH must be amd64 or arm64, not '$arch'" >&2; exit 2 ;; esac
# the assignment, from its first line to the line that closes it
block="$(sed -n '/^GUEST_PKGS=(/,/)[[:space:]]*$/p' "$builder")"
case "$block" in
  "GUEST_PKGS=("*")") ;;
  *) echo "guest-packages.sh: no GUEST_PKGS=( ... ) list in $builder" >&2; exit 1 ;;
esac
eval "$block"
[ "${#GUEST_PKGS[@]}" -gt 0 ] || { echo "guest-packages.sh: GUEST_PKGS in $builder is empty" >&2; exit 1; }
printf '%s\n' "${GUEST_PKGS[@]}" "linux-headers-$arch"
