#!/usr/bin/env bash
# A student's server in a Kata Containers pod (deploy/kubernetes): the pod's
# command (values.yaml: singleuser.cmd). What scripts/hub-guest.sh does in a
# one-host hub's VM, for a pod: the pod's kernel is its own Kata VM's, the
# student is root in it (privileged in the sandbox), their home is their
# PersistentVolumeClaim at /home/student, and the hub's spawner (KubeSpawner)
# gave the JUPYTERHUB_* environment.
set -euo pipefail
export PATH=/opt/labkit/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
LABKIT=/opt/labkit
STUDENT=/home/student
say() { echo "labkit-pod: $*"; }
die() { echo "labkit-pod: $*" >&2; exit 1; }
[ $# -eq 0 ] || die "no arguments expected (singleuser.cmd takes none), got: $*"
[ "$(id -u)" -eq 0 ] || die "must run as root in its own kernel (values.yaml: singleuser.uid 0, privileged)"
[ -n "${JUPYTERHUB_API_TOKEN:-}" ] || die "no JUPYTERHUB_API_TOKEN: this runs under JupyterHub's KubeSpawner"
mountpoint -q "$STUDENT" || die "$STUDENT is not the student's volume (values.yaml: singleuser.storage)"

# what the lab needs mounted (scripts/setup.sh and hub-guest.sh do the same)
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing \
  || die "cannot mount tracefs: is the pod privileged in its Kata VM (runtimeclass.yaml)?"
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug || say "no debugfs"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || say "no bpffs"

# BCC compiles against /lib/modules/$(uname -r)/build. Kata's guest kernel has
# no header package: link Debian's generic headers there, as scripts/setup.sh
# does on any kernel without one (labkit doctor says which headers are in use)
rel="$(uname -r)"
if [ ! -e "/lib/modules/$rel/build/include/generated/autoconf.h" ]; then
  generic="$(ls -1d /lib/modules/*/build 2>/dev/null | while read -r b; do
      [ -e "$b/Makefile" ] && echo "${b%/build}"; done | sort -V | tail -n 1)"
  [ -n "$generic" ] || die "no kernel headers under /lib/modules (the image installs linux-headers-amd64)"
  mkdir -p "/lib/modules/$rel"
  ln -sfn "$(readlink -f "$generic/build")" "/lib/modules/$rel/build"
  ln -sfn "$(readlink -f "$generic/source" 2>/dev/null || readlink -f "$generic/build")" "/lib/modules/$rel/source"
  say "kernel $rel has no headers of its own: using $(basename "$generic")'s"
fi

# the lessons: the image's, brought in by the lessons rules (a lesson the
# student changed is never overwritten: labkit/commands/lessons.py)
rm -rf "$STUDENT/.lessons-shipped"
cp -a "$LABKIT/notebooks" "$STUDENT/.lessons-shipped"
rm -rf "$STUDENT/.lessons-shipped/.ipynb_checkpoints"
mkdir -p "$STUDENT/notebooks"
ln -sfn "$LABKIT/bpf_snippets" "$STUDENT/notebooks/bpf_snippets"
cp -f "$LABKIT/notebooks/index.ipynb" "$STUDENT/notebooks/" 2>/dev/null || true
python -m labkit lessons --root "$STUDENT" update

# the port KubeSpawner connects to (JUPYTERHUB_SERVICE_URL: http://0.0.0.0:8888/user/NAME/)
url="${JUPYTERHUB_SERVICE_URL:-http://0.0.0.0:8888/}"
port="${url#*://*:}"
port="${port%%/*}"
case "$port" in ''|*[!0-9]*) die "cannot read the port from JUPYTERHUB_SERVICE_URL=$url" ;; esac
say "single-user server for ${JUPYTERHUB_USER:-?} on port $port, kernel $rel"
# --ip default-route: the pod's own address (start-jupyter.sh never listens on every address)
exec "$LABKIT/scripts/start-jupyter.sh" --hub --ip default-route --port "$port" --notebooks "$STUDENT/notebooks"
