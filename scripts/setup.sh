#!/usr/bin/env bash
# labkit provisioning: everything the lab needs, installed idempotently.
#
# Used by ./lab (start, test) and by the Vagrantfile: one script, no copies.
# A second run installs nothing and finishes in a second or two.
#
#   scripts/setup.sh            runtime: BCC, headers, mounts, venv, kernel spec
#   scripts/setup.sh --test     the above plus test tools (chromium, pytest, ...)
#   scripts/setup.sh --hub      the above plus the class server's host tools (qemu,
#                               socat, debootstrap, Node.js and configurable-http-proxy)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
WANT_TEST=0
WANT_HUB=0
for arg in "$@"; do
  case "$arg" in
    --test) WANT_TEST=1 ;;
    --hub) WANT_HUB=1 ;;
    *) echo "setup.sh: unknown option '$arg' (known: --test, --hub)" >&2; exit 2 ;;
  esac
done

say() { printf '[labkit setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh must run as root (BPF, mounts and packages need it): use ./lab, which asks sudo." >&2
  exit 1
fi

# One run at a time: in the Lima VM, the boot provisioning and labkit.service
# (./lab start) both run this at every boot; two apt or pip runs must not overlap.
if command -v flock >/dev/null 2>&1; then
  mkdir -p /run/lock
  exec 9>/run/lock/labkit-setup.lock
  flock 9
fi

export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------- packages
APT_UPDATED=0
apt_install() {
  # install only what is missing; never touch what is there
  local missing=()
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  say "installing: ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

apt_has() { apt-cache show "$1" >/dev/null 2>&1; }

RUNTIME_PKGS=(python3-bpfcc bpfcc-tools libbpf1 bpftool iproute2 iputils-ping
              python3-venv python3-pip ca-certificates bpftrace
              clang libbpf-dev)
# clang and libbpf-dev: lesson 09 compiles a CO-RE object (clang -target bpf,
# <bpf/bpf_helpers.h>) and loads it through libbpf
# libbpf1 is called libbpf0 on older releases; bpftool lives in linux-tools on Ubuntu
if ! apt_has bpftool; then
  RUNTIME_PKGS=("${RUNTIME_PKGS[@]/bpftool/linux-tools-common}")
fi
apt_install "${RUNTIME_PKGS[@]}"

# ------------------------------------------------------------ kernel headers
KREL="$(uname -r)"
MODDIR="/lib/modules/$KREL"
headers_ok() {
  [ -e "$MODDIR/build/include/generated/autoconf.h" ] &&
  { [ -e "$MODDIR/build/include/linux/kconfig.h" ] || [ -e "$MODDIR/source/include/linux/kconfig.h" ]; }
}
if ! headers_ok; then
  if apt_has "linux-headers-$KREL"; then
    apt_install "linux-headers-$KREL"
  fi
fi
if ! headers_ok; then
  # this kernel has no header package: use the distro's generic headers
  ARCH="$(dpkg --print-architecture)"
  if apt_has "linux-headers-$ARCH"; then GENERIC="linux-headers-$ARCH"; else GENERIC="linux-headers-generic"; fi
  apt_install "$GENERIC"
  # the package ships /lib/modules/<its version>/{build,source}: reuse its targets
  GEN_KVER="$(ls -1 /lib/modules | grep -vxF "$KREL" | while read -r v; do
      [ -e "/lib/modules/$v/build/Makefile" ] && echo "$v"; done | sort -V | tail -n 1)"
  if [ -z "$GEN_KVER" ]; then
    echo "no kernel headers found under /lib/modules after installing $GENERIC" >&2
    exit 1
  fi
  HDR_BUILD="$(readlink -f "/lib/modules/$GEN_KVER/build")"
  HDR_SOURCE="$(readlink -f "/lib/modules/$GEN_KVER/source" 2>/dev/null || echo "$HDR_BUILD")"
  mkdir -p "$MODDIR"
  ln -sfn "$HDR_BUILD" "$MODDIR/build"
  ln -sfn "$HDR_SOURCE" "$MODDIR/source"
  HDR="$HDR_BUILD (+ $HDR_SOURCE)"
  say "NOTE: kernel $KREL has no matching header package; linked the distro's generic"
  say "      headers $HDR at $MODDIR/build and $MODDIR/source (BCC compiles with them)."
fi

# ------------------------------------------------------------------ mounts
if [ ! -e /sys/kernel/tracing/events ]; then
  say "mounting tracefs at /sys/kernel/tracing"
  mount -t tracefs tracefs /sys/kernel/tracing
fi
if ! mountpoint -q /sys/kernel/debug; then
  say "mounting debugfs at /sys/kernel/debug"
  mount -t debugfs debugfs /sys/kernel/debug
fi
# the BPF filesystem: lesson 14 pins maps there, in directories of the lab's own (labkit.PinDir)
if ! mountpoint -q /sys/fs/bpf; then
  say "mounting the BPF filesystem at /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || say "could not mount the BPF filesystem: lesson 14 cannot pin maps"
fi
# cgroup BPF programs (lesson 13) need the cgroup v2 hierarchy: a v1-only host (no cgroup2 mount at all,
# neither /sys/fs/cgroup nor a hybrid host's /sys/fs/cgroup/unified) gets one of the project's own
if ! grep -q ' - cgroup2 ' /proc/self/mountinfo; then
  say "no cgroup v2 hierarchy: mounting one at /run/labkit/cgroup2 (lesson 13)"
  mkdir -p /run/labkit/cgroup2
  mountpoint -q /run/labkit/cgroup2 || mount -t cgroup2 none /run/labkit/cgroup2
fi

# -------------------------------------------------------------- test tools
if [ "$WANT_TEST" -eq 1 ]; then
  apt_install chromium fonts-dejavu-core
fi

# -------------------------------------------------------- class server tools
# ./lab hub: qemu boots the students' VMs, socat joins each VM to the hub's API,
# debootstrap builds the VM image, and JupyterHub's proxy runs on Node.js
PROXY_VERSION=5.3.0
PROXY_DIR="$VENV/hub-proxy"
if [ "$WANT_HUB" -eq 1 ]; then
  apt_install qemu-system-x86 qemu-utils socat debootstrap e2fsprogs
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
fi

# -------------------------------------------------------------------- venv
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV (system site-packages, so the distro's BCC imports)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# the extras: test and hub always (small); k8s (deploy/kubernetes's offline checks,
# ~150 MB of Kubernetes schemas) only for the tests. The stamp holds the pins'
# hash and the extras installed: a run wanting fewer extras installs nothing.
EXTRAS="test,hub"
[ "$WANT_TEST" -eq 1 ] && EXTRAS="test,hub,k8s"
STAMP="$VENV/.labkit-installed"
PINS="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
have_pins="$(cut -d' ' -f1 "$STAMP" 2>/dev/null || true)"
have_extras="$(cut -s -d' ' -f2 "$STAMP" 2>/dev/null || true)"
[ -n "$have_pins" ] && [ -z "$have_extras" ] && have_extras="test,hub"   # a stamp from before the extras were in it
need_install=0
if [ "$have_pins" != "$PINS" ]; then
  need_install=1
else
  for e in ${EXTRAS//,/ }; do
    case ",$have_extras," in *",$e,"*) ;; *) need_install=1 ;; esac
  done
fi
if [ "$need_install" -eq 1 ]; then
  # keep what is there (./lab test after ./lab start, and the other way round)
  [ "$have_pins" = "$PINS" ] && [ -n "$have_extras" ] && EXTRAS="$(printf '%s\n' ${EXTRAS//,/ } ${have_extras//,/ } | sort -u | paste -sd,)"
  say "installing Python dependencies (pinned in pyproject.toml; extras $EXTRAS) into .venv"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[$EXTRAS]"
  echo "$PINS $EXTRAS" > "$STAMP"
fi

if [ "$WANT_HUB" -eq 1 ] && [ "$(cat "$PROXY_DIR/.version" 2>/dev/null)" != "$PROXY_VERSION" ]; then
  say "installing configurable-http-proxy $PROXY_VERSION (npm) into $PROXY_DIR"
  npm install --silent --no-audit --no-fund --prefix "$PROXY_DIR" "configurable-http-proxy@$PROXY_VERSION" >/dev/null
  echo "$PROXY_VERSION" > "$PROXY_DIR/.version"
fi

# ------------------------------------------------------------- kernel spec
KSPEC="$VENV/share/jupyter/kernels/labkit/kernel.json"
if [ ! -f "$KSPEC" ] || ! grep -q "$VENV/bin/python" "$KSPEC"; then
  say "installing Jupyter kernel spec 'labkit'"
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name labkit --display-name "labkit (eBPF, Python 3)" >/dev/null
fi

say "ready"
