#!/bin/bash
# A one-off job in a fresh VM from the class server's image (labkit.mode=job
# on the kernel command line; run by the image's /sbin/labkit-init after the
# basic mounts): labkit course autograde --vm grades one submission per VM.
#
#   labkit_job   9p share, writable: run.sh (the job), and what it writes back;
#                this script adds log (its output) and rc (its exit code)
#
# No network device: the job reaches nothing, and nothing reaches it.
PATH=/opt/labkit/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH HOME=/root LANG=C.UTF-8
hostname labkit-job
modprobe 9pnet_virtio 2>/dev/null; modprobe 9p 2>/dev/null
mkdir -p /mnt/job
rc=98
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 labkit_job /mnt/job && [ -f /mnt/job/run.sh ]; then
  mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
  mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
  /bin/bash /mnt/job/run.sh > /mnt/job/log 2>&1
  rc=$?
  echo "$rc" > /mnt/job/rc
  sync
  umount /mnt/job
else
  echo "labkit-job: no job share (labkit_job) with a run.sh" > /dev/console
fi
echo "LABKIT-JOB-RESULT rc=$rc" > /dev/console
echo o > /proc/sysrq-trigger
sleep 30
