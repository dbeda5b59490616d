#!/bin/bash
# A student's VM under the class server (labkit/hub): run by the image's
# /sbin/labkit-init (tests/stock_kernel/guest-init) as PID 1 when the kernel
# command line says labkit.mode=hub, after the basic mounts.
#
#   /dev/vdb          the student's own disk (ext4, made by the hub): /home/student
#   labkit_spawn      9p share, read-only: env (the single-user server's
#                     environment, with its hub token), stop (appears when the
#                     hub stops the server); with a course: course_id and
#                     nbgrader_config.py
#   labkit_release    with a course: its release/, read-only (nbgrader's outbound)
#   labkit_feedback   with a course: this student's feedback, read-only
#   eth0              qemu's user-mode network, restrict=on: 198.18.200.15 is
#                     reached from the host's 127.0.0.1:<port>; 198.18.200.100:8081
#                     is the hub's API; nothing else is reachable
#
# The lessons come from the image (/opt/labkit/notebooks) into
# /home/student/notebooks by `labkit lessons update`: a lesson the student
# changed is never overwritten (see labkit/commands/lessons.py).
PATH=/opt/labkit/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH HOME=/root LANG=C.UTF-8
say() { echo "labkit-hub-guest: $*" > /dev/console; }
halt() {
  sync
  mountpoint -q /home/student && umount /home/student
  sync
  say "powering off"
  echo o > /proc/sysrq-trigger
  sleep 30
}

hostname "lab-$(cat /proc/sys/kernel/random/uuid | cut -c1-8)"
modprobe virtio_net 2>/dev/null
modprobe 9pnet_virtio 2>/dev/null; modprobe 9p 2>/dev/null
ip link set eth0 up && ip addr add 198.18.200.15/24 dev eth0 || { say "no network device"; halt; }

mkdir -p /run/labkit-spawn /home/student
mount -t 9p -o trans=virtio,version=9p2000.L,ro labkit_spawn /run/labkit-spawn || { say "no spawn share"; halt; }
[ -s /run/labkit-spawn/env ] || { say "the spawn share has no env"; halt; }
# the student's disk: checked, then mounted (a full disk still mounts)
fsck.ext4 -p /dev/vdb > /dev/console 2>&1
mount -t ext4 -o nodev,nosuid /dev/vdb /home/student || { say "cannot mount the student's disk"; halt; }

# what the lab needs mounted (scripts/setup.sh does the same on a student's own VM)
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# the lab's lessons, from the image, brought in by the lessons rules
rm -rf /home/student/.lessons-shipped
cp -a /opt/labkit/notebooks /home/student/.lessons-shipped
rm -rf /home/student/.lessons-shipped/.ipynb_checkpoints
# a course (./lab hub --course): nbgrader's exchange, as this student sees it
# (labkit/hub/exchange.py): outbound is the course's release (read-only share),
# inbound is on the student's own disk, feedback is their own (read-only share)
mkdir -p /run/labkit-release
if [ -s /run/labkit-spawn/course_id ] &&
   mount -t 9p -o trans=virtio,version=9p2000.L,ro labkit_release /run/labkit-release 2>/dev/null; then
  ex="/srv/nbgrader/exchange/$(cat /run/labkit-spawn/course_id)"
  mkdir -p "$ex/feedback" /home/student/.nbgrader/inbound /home/student/.nbgrader/cache /etc/jupyter
  ln -sfn /run/labkit-release "$ex/outbound"
  ln -sfn /home/student/.nbgrader/inbound "$ex/inbound"
  mount -t 9p -o trans=virtio,version=9p2000.L,ro labkit_feedback "$ex/feedback" || say "no feedback share"
  cp /run/labkit-spawn/nbgrader_config.py /etc/jupyter/nbgrader_config.py
  say "course $(cat /run/labkit-spawn/course_id): assignments $(ls /run/labkit-release | tr '\n' ' ')"
fi
mkdir -p /home/student/notebooks
# the snippets (read-only, from the image) and the lessons' index (navigation, always the image's)
ln -sfn /opt/labkit/bpf_snippets /home/student/notebooks/bpf_snippets
cp -f /opt/labkit/notebooks/index.ipynb /home/student/notebooks/ 2>/dev/null
python -m labkit lessons --root /home/student update > /dev/console 2>&1

set -a
. /run/labkit-spawn/env
set +a
/opt/labkit/scripts/start-jupyter.sh --hub --ip 198.18.200.15 --port 8888 \
  --notebooks /home/student/notebooks > /dev/console 2>&1 &
server=$!
say "single-user server started (pid $server) for ${JUPYTERHUB_USER:-?}"
while kill -0 "$server" 2>/dev/null; do
  if [ -e /run/labkit-spawn/stop ]; then
    say "the hub stops this server"
    kill -TERM "$server"
    for _ in $(seq 20); do kill -0 "$server" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$server" 2>/dev/null
    break
  fi
  sleep 1
done
halt
