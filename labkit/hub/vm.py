"""One student's VM: the qemu command line, the disks and the spawn share.

Pure where it can be (:func:`qemu_argv`, :func:`guest_env`, :func:`check_name`),
so the rules that make a VM safe are unit-tested without booting one.

The network of every VM is qemu's user-mode stack (slirp) with
``restrict=on``: the guest can open no connection to the host or anywhere
else. Two holes are made on purpose, and only these two:

* ``hostfwd``: the host's ``127.0.0.1:<port>`` reaches the guest's
  JupyterLab (the hub's proxy routes ``/user/<name>/`` there);
* ``guestfwd``: the guest's ``198.18.200.100:8081`` is the hub's API (the
  single-user server checks logins and reports activity there); each
  connection is handed to ``socat`` on the host, which connects to the hub's
  API on 127.0.0.1 and nowhere else.

The guest's addresses live only inside qemu's user-mode stack, in
198.18.0.0/15 (the lab's range for addresses nothing else uses): no address,
route or interface appears on the host.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labkit._errors import ArgumentError

__all__ = [
    "GUEST_IP",
    "GUEST_NET",
    "HUB_IN_GUEST",
    "JUPYTER_PORT",
    "VM",
    "check_name",
    "guest_env",
    "job_argv",
    "make_home_disk",
    "process_args",
    "qemu_argv",
    "vm_marker",
]

GUEST_NET = "198.18.200.0/24"
GUEST_GATEWAY = "198.18.200.2"    # slirp's own address (restrict=on: leads nowhere)
GUEST_IP = "198.18.200.15"
HUB_IN_GUEST = "198.18.200.100"   # the guestfwd to the hub's API
HUB_PORT_IN_GUEST = 8081
JUPYTER_PORT = 8888

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    """A JupyterHub user name, safe as a directory name and a qemu option value."""
    if not _NAME.match(name or "") or ".." in name:
        raise ArgumentError(f"user name {name!r} cannot name a VM: use 1-64 of a-z 0-9 _ . - "
                            "(starting with a letter or digit)")
    return name


def process_args(pid: int) -> list[str]:
    """A process's command line; none when it is gone (or a zombie, whose cmdline is empty)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0") if raw else []


def vm_marker(name: str) -> str:
    """What a student's qemu carries on its command line (``-name``), so that the
    hub recognises its VMs by pid after a restart and never signals another process."""
    return f"labkit-hub-vm:{check_name(name)}"


@dataclass(frozen=True)
class VM:
    """What one VM is made of. ``image``: a directory with vmlinuz, initrd.img and
    rootfs.ext4 (tests/stock_kernel/build-image.sh); ``home``: the student's own
    disk (ext4, kept); ``spawn``: a directory shared read-only into the guest
    (``env``: the single-user server's environment; ``stop``: made by the host
    to ask the guest to shut down cleanly); ``release``: a course's release
    directory, nbgrader's outbound in the guest; ``feedback``: this student's own
    feedback directory, nbgrader's feedback in the guest (labkit/hub/exchange.py)."""

    name: str
    image: Path
    home: Path
    spawn: Path
    console: Path
    port: int
    hub_api_port: int
    mem_mb: int = 2048
    cpus: int = 1
    accel: str = "tcg"
    socat: str = "/usr/bin/socat"
    release: Path | None = None    # a course's release/ (labkit course release), shared read-only: the lessons
    feedback: Path | None = None   # STATE/users/NAME/feedback, shared read-only: this student's feedback only

    def __post_init__(self):
        check_name(self.name)
        if not 1024 <= self.port <= 65535:
            raise ArgumentError(f"VM port {self.port} is not a port above 1023")
        if not 1 <= self.hub_api_port <= 65535:
            raise ArgumentError(f"hub API port {self.hub_api_port} is not a port")
        if self.mem_mb < 512:
            raise ArgumentError(f"a VM needs at least 512 MiB (BCC compiles inside it), not {self.mem_mb}")
        if not 1 <= self.cpus <= 64:
            raise ArgumentError(f"cpus must be 1-64, not {self.cpus}")
        if self.accel not in ("tcg", "kvm"):
            raise ArgumentError(f"accel must be 'tcg' or 'kvm', not {self.accel!r}")


def _machine(marker: str, image: Path, mode: str, *, accel: str, cpus: int, mem_mb: int, console: Path,
             qemu: str) -> list[str]:
    """What every VM of the lab has: its name, CPU and memory, its console, the image's kernel
    booted into ``mode`` (guest-init), the image's root file system read-only (a throw-away overlay)."""
    for path in (image, console):
        if "," in str(path):
            raise ArgumentError(f"{path}: a path with a comma cannot be given to qemu; use another directory")
    # net.ifnames=0: the initramfs's udev would name the NIC ens5; the guest script wants eth0
    append = (f"console=ttyS0 root=/dev/vda rw rootfstype=ext4 init=/sbin/labkit-init labkit.mode={mode} "
              "net.ifnames=0 panic=1 loglevel=4 quiet")
    return [
        qemu, "-name", marker,
        # TCG's translation cache defaults to 1 GiB per VM: a quarter is plenty for a lab
        "-accel", "tcg,tb-size=256" if accel == "tcg" else accel, "-cpu", "host" if accel == "kvm" else "max",
        "-smp", str(cpus), "-m", str(mem_mb),
        "-display", "none", "-monitor", "none", "-no-reboot",   # a panic (panic=1 reboots) ends the VM
        "-serial", f"file:{console}",
        "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
        "-append", append,
        # the shared image, never written: the guest's changes to / go to a throw-away overlay
        "-drive", f"file={image / 'rootfs.ext4'},format=raw,if=virtio,snapshot=on",
    ]


def job_argv(name: str, image: Path, job: Path, console: Path, *, mem_mb: int = 2048, cpus: int = 1,
             accel: str = "tcg", qemu: str = "qemu-system-x86_64") -> list[str]:
    """A one-off job's VM (scripts/vm-job.sh runs ``job/run.sh``): no network device at all."""
    if "," in str(job):
        raise ArgumentError(f"{job}: a path with a comma cannot be given to qemu; use another directory")
    return _machine(f"labkit-job:{check_name(name)}", image, "job", accel=accel, cpus=cpus, mem_mb=mem_mb,
                    console=console, qemu=qemu) + [
        "-nic", "none",
        "-virtfs", f"local,path={job},mount_tag=labkit_job,security_model=none",
    ]


def qemu_argv(vm: VM, qemu: str = "qemu-system-x86_64") -> list[str]:
    """The whole qemu command line of a student's ``vm`` (x86-64 guest)."""
    net = ",".join([
        "user", "id=n0", f"net={GUEST_NET}", f"host={GUEST_GATEWAY}", f"dhcpstart={GUEST_IP}",
        "restrict=on",
        f"hostfwd=tcp:127.0.0.1:{vm.port}-{GUEST_IP}:{JUPYTER_PORT}",
        # cmd: one socat per connection (a chardev would connect once, at start)
        f"guestfwd=tcp:{HUB_IN_GUEST}:{HUB_PORT_IN_GUEST}-cmd:{vm.socat} - TCP:127.0.0.1:{vm.hub_api_port}",
    ])
    for path in (vm.home, vm.spawn, vm.release or "", vm.feedback or ""):
        if "," in str(path):
            raise ArgumentError(f"{path}: a path with a comma cannot be given to qemu; use another state directory")
    return _machine(vm_marker(vm.name), vm.image, "hub", accel=vm.accel, cpus=vm.cpus, mem_mb=vm.mem_mb,
                    console=vm.console, qemu=qemu) + [
        # the student's own disk, written: their work
        "-drive", f"file={vm.home},format=raw,if=virtio",
        "-virtfs", f"local,path={vm.spawn},mount_tag=labkit_spawn,security_model=none,readonly=on",
        "-netdev", net, "-device", "virtio-net-pci,netdev=n0",
    ] + [arg for tag, path in (("labkit_release", vm.release), ("labkit_feedback", vm.feedback)) if path
         for arg in ("-virtfs", f"local,path={path},mount_tag={tag},security_model=none,readonly=on")]


# what of the hub's environment the single-user server needs (the rest is the host's)
_KEEP = re.compile(r"^(JUPYTERHUB_|JPY_API_TOKEN$)")


def guest_env(env: dict[str, str], hub_api_url: str) -> str:
    """The spawn share's ``env`` file: the single-user server's environment as
    shell ``export`` lines. Only JUPYTERHUB_* (and JPY_API_TOKEN) pass; every URL
    naming the hub's API on the host is rewritten to the guest's way to it."""
    inside = f"http://{HUB_IN_GUEST}:{HUB_PORT_IN_GUEST}"
    host = hub_api_url.split("/hub/api")[0].rstrip("/")
    lines = []
    for key in sorted(env):
        if not _KEEP.match(key):
            continue
        value = str(env[key])
        if host and value.startswith(host + "/"):
            value = inside + value[len(host):]
        lines.append(f"export {key}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def make_home_disk(path: Path, size_mb: int) -> None:
    """A new, empty ext4 disk for a student's home (sparse: takes no space until used).
    Never overwrites: the student's work is on it."""
    if path.exists():
        return
    if size_mb < 64:
        raise ArgumentError(f"a home disk needs at least 64 MiB, not {size_mb}")
    mkfs = shutil.which("mkfs.ext4") or "/sbin/mkfs.ext4"
    tmp = path.with_name(path.name + ".new")
    with open(tmp, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    r = subprocess.run([mkfs, "-q", "-F", "-L", "labkit-home", str(tmp)], capture_output=True, text=True)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise OSError(f"mkfs.ext4 {tmp} failed: {r.stderr.strip()}")
    tmp.rename(path)
