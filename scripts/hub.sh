#!/usr/bin/env bash
# The class server: JupyterHub on this host, every student's JupyterLab inside
# their own VM (own kernel, root inside it). Called by `./lab hub` after
# scripts/setup.sh --hub. See the README's "Class server" section.
#
#   ./lab hub [options]
#
#   --ip ADDR           where students connect (default 127.0.0.1; a class server
#                       gives its own address, e.g. --ip 0.0.0.0 behind TLS)
#   --port N            the hub's public port (default 8000)
#   --admin NAME[,..]   the teacher(s): admins who approve sign-ups at /hub/authorize
#                       (remembered in STATE; sign up under this name first)
#   --state DIR         images, students' disks, the hub's database
#                       (default /var/lib/labkit-hub)
#   --images DIR        where VM images are built and kept (default STATE/images)
#   --kernel 6.1|6.12|5.10   the students' kernel: Debian's stock kernel (default 6.1)
#   --accel auto|kvm|tcg     auto (default): KVM when a probe boot works, else TCG
#   --mem MiB           each VM's RAM (default 2048)
#   --cpus N            each VM's vCPUs and CPU share (default 1)
#   --home-mb MiB       size of a new student's disk (default 2048)
#   --idle-timeout S    stop a server idle this long (default 3600; 0: never)
#   --course DIR        serve this nbgrader course: what `labkit course release`
#                       made (DIR/release/) is in every student's Assignments tab
#                       to fetch and submit; collect the submissions with
#                       `labkit course collect DIR --hub STATE`, hand back
#                       feedback with `labkit course release-feedback DIR --hub STATE`
#   --open-signup       approve every sign-up (a workshop; default: the admin approves)
#   --api-port N        the hub's API on 127.0.0.1 (default 8081)
#   --proxy-api-port N  the proxy's API on 127.0.0.1 (default 8001)
#   --build-only        build (or find) the VM image, then exit
#   --reuse-image       boot the newest image already built for this kernel even if
#                       the checkout changed since (no rebuild; says so)
#
# The image is the stock-kernel run's (tests/stock_kernel/build-image.sh) with
# this checkout in it: a new version of labkit or of its lessons makes a new
# image, which students get at their next server start; their notebooks stay
# on their own disks (the `labkit lessons` rules bring in the new lessons).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
IP=127.0.0.1
PORT=8000
ADMINS=""
STATE=/var/lib/labkit-hub
IMAGES=""
KERNEL=6.1
ACCEL=auto
MEM=2048
CPUS=1
HOME_MB=2048
IDLE=3600
OPEN=0
COURSE=""
API_PORT=8081
PROXY_API_PORT=8001
BUILD_ONLY=0
REUSE=0
die() { echo "hub: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "option $1 needs a value"; }
num() { case "$2" in ''|*[!0-9]*) die "$1 wants a number, got '$2'" ;; esac; }
while [ $# -gt 0 ]; do
  case "$1" in
    --ip) need "$@"; IP="$2"; shift 2 ;;
    --port) need "$@"; num "$1" "$2"; PORT="$2"; shift 2 ;;
    --admin) need "$@"; ADMINS="$2"; shift 2 ;;
    --state) need "$@"; STATE="${2%/}"; shift 2 ;;
    --images) need "$@"; IMAGES="${2%/}"; shift 2 ;;
    --kernel) need "$@"; KERNEL="$2"; shift 2 ;;
    --accel) need "$@"; ACCEL="$2"; shift 2 ;;
    --mem) need "$@"; num "$1" "$2"; MEM="$2"; shift 2 ;;
    --cpus) need "$@"; num "$1" "$2"; CPUS="$2"; shift 2 ;;
    --home-mb) need "$@"; num "$1" "$2"; HOME_MB="$2"; shift 2 ;;
    --idle-timeout) need "$@"; num "$1" "$2"; IDLE="$2"; shift 2 ;;
    --open-signup) OPEN=1; shift ;;
    --course) need "$@"; COURSE="$(cd "$2" 2>/dev/null && pwd)" || die "--course: no directory '$2'"; shift 2 ;;
    --api-port) need "$@"; num "$1" "$2"; API_PORT="$2"; shift 2 ;;
    --proxy-api-port) need "$@"; num "$1" "$2"; PROXY_API_PORT="$2"; shift 2 ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --reuse-image) REUSE=1; shift ;;
    -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see ./lab hub --help)" ;;
  esac
done
case "$KERNEL" in 5.10|6.1|6.12) ;; *) die "--kernel must be 5.10, 6.1 or 6.12, not '$KERNEL'" ;; esac
case "$ACCEL" in auto|kvm|tcg) ;; *) die "--accel must be auto, kvm or tcg, not '$ACCEL'" ;; esac
[ "$MEM" -ge 512 ] || die "--mem: a VM needs at least 512 MiB (BCC compiles inside it)"
[ "$CPUS" -ge 1 ] || die "--cpus must be at least 1"
[ "$HOME_MB" -ge 64 ] || die "--home-mb must be at least 64"
case "$ADMINS" in *[!a-z0-9_.,-]*) die "--admin: user names are a-z 0-9 _ . - (comma-separated)" ;; esac
say() { printf '[labkit hub] %s\n' "$*"; }
RELEASE=""
if [ -n "$COURSE" ]; then
  RELEASE="$COURSE/release"
  ls "$RELEASE"/lesson[0-9][0-9]/[0-9][0-9]-*.ipynb >/dev/null 2>&1 \
    || die "--course: $RELEASE has no lessons (run: labkit course release $COURSE)"
  case "$RELEASE" in *,*) die "--course: a path with a comma cannot be shared with the VMs" ;; esac
fi

IMAGES="${IMAGES:-$STATE/images}"
mkdir -p "$STATE" "$IMAGES" "$STATE/users"
chmod 700 "$STATE"

# ------------------------------------------------------------------- image
# keyed by the builder, the guest's init and what of this checkout the students'
# VMs run (labkit, the lessons, the snippets, the in-guest scripts, the pins)
BUILDER="$ROOT/tests/stock_kernel/build-image.sh"
KEY="$( { cat "$BUILDER" "$ROOT/tests/stock_kernel/guest-init"
          tar -C "$ROOT" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
            --exclude='*/__pycache__' --exclude='*/.ipynb_checkpoints' -cf - \
            pyproject.toml labkit notebooks bpf_snippets scripts/hub-guest.sh scripts/vm-job.sh scripts/start-jupyter.sh \
            scripts/jupyter-student scripts/jupyterlab-settings ; } | sha256sum | cut -c1-16)"
IMAGE="$IMAGES/bookworm-amd64-k$KERNEL-$KEY"
exec 9>"$IMAGES/.lock"
flock 9
if [ "$REUSE" -eq 1 ] && [ ! -s "$IMAGE/rootfs.ext4" ]; then
  newest="$(ls -1dt "$IMAGES"/bookworm-amd64-k"$KERNEL"-*/ 2>/dev/null | grep -v '\.build/$' | head -n 1)"
  if [ -n "$newest" ] && [ -s "$newest/rootfs.ext4" ]; then
    IMAGE="${newest%/}"
    say "--reuse-image: $(basename "$IMAGE") (built from an earlier checkout)"
  fi
fi
if [ ! -s "$IMAGE/rootfs.ext4" ]; then
  say "building the VM image $IMAGE (Debian 12, stock kernel $KERNEL, labkit; takes minutes)"
  t=$(date +%s)
  "$BUILDER" "$IMAGE" "$ROOT" amd64 "$KERNEL"
  say "image built in $(( $(date +%s) - t )) s"
fi
ln -sfn "$(basename "$IMAGE")" "$IMAGES/current.new"
mv -T "$IMAGES/current.new" "$IMAGES/current"
# older images of this kernel go: a VM still running on one keeps its open files until it stops
for old in "$IMAGES"/bookworm-amd64-k"$KERNEL"-*; do
  [ "$old" = "$IMAGE" ] || rm -rf "$old"
done
flock -u 9
say "image: $(basename "$IMAGE") ($(sed -n 's/^kernel: //p' "$IMAGE/manifest.txt"))"
[ "$BUILD_ONLY" -eq 1 ] && exit 0

if [ "$ACCEL" = auto ]; then
  if "$ROOT/scripts/kvm-works" qemu-system-x86_64 "$IMAGE/vmlinuz" ttyS0; then ACCEL=kvm; else ACCEL=tcg; fi
  say "accelerator: $ACCEL (auto-detected)"
fi

# ------------------------------------------------------------- the admins
# remembered, so that a restart without --admin keeps the teacher an admin
if [ -n "$ADMINS" ]; then echo "$ADMINS" > "$STATE/admins"; fi
ADMINS="$(cat "$STATE/admins" 2>/dev/null || true)"
[ -n "$ADMINS" ] || say "no --admin given: nobody can approve sign-ups (start once with --admin NAME)"

# the proxy's token: kept, so that a restarted hub talks to the running proxy
if [ ! -s "$STATE/proxy_token" ]; then
  ( umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))' > "$STATE/proxy_token" )
fi
export CONFIGPROXY_AUTH_TOKEN="$(cat "$STATE/proxy_token")"

export LABKIT_HUB_STATE="$STATE" LABKIT_HUB_IMAGE="$IMAGE" LABKIT_HUB_IP="$IP" LABKIT_HUB_PORT="$PORT" \
  LABKIT_HUB_API_PORT="$API_PORT" LABKIT_HUB_PROXY_API_PORT="$PROXY_API_PORT" \
  LABKIT_HUB_PROXY="$VENV/hub-proxy/node_modules/.bin/configurable-http-proxy" \
  LABKIT_HUB_ADMINS="$ADMINS" LABKIT_HUB_OPEN_SIGNUP="$OPEN" LABKIT_HUB_ACCEL="$ACCEL" \
  LABKIT_HUB_MEM="$MEM" LABKIT_HUB_CPUS="$CPUS" LABKIT_HUB_HOME_MB="$HOME_MB" \
  LABKIT_HUB_IDLE_TIMEOUT="$IDLE" LABKIT_HUB_PYTHON="$VENV/bin/python" LABKIT_HUB_RELEASE="$RELEASE"
say "JupyterHub at http://$IP:$PORT/ (state in $STATE; VMs: $MEM MiB, $CPUS CPU, $ACCEL)"
cd "$STATE"
exec "$VENV/bin/jupyterhub" -f "$ROOT/scripts/jupyterhub_config.py"
