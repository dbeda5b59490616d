"""JupyterHub's spawner for labkit: every student's server runs in their own VM.

The image new VMs boot is ``image`` (``./lab hub`` builds it and sets it; a
new image reaches each student at their next start). A shared kernel is no option for eBPF (CAP_BPF with CAP_PERFMON reads any
kernel memory and sees every process), so each student gets a kernel of
their own: a qemu VM booted from the lab's image (the stock-kernel image:
Debian 12, its stock kernel and headers, BCC, labkit), root inside it, with
JupyterLab run by ``jupyterhub-singleuser`` (scripts/hub-guest.sh).

State on the host, under ``state_dir`` (``./lab hub --state``)::

    users/<name>/home.img               the student's disk: their notebooks, kept
    users/<name>/spawn/env              the single-user server's environment (read-only share)
    users/<name>/spawn/stop             made by stop(): the guest shuts down cleanly
    users/<name>/spawn/nbgrader_config.py   with a course: nbgrader's exchange in the guest
    users/<name>/feedback/              with a course: this student's feedback (read-only share)
    users/<name>/console.log            the VM's serial console

The hub keeps ``pid`` and ``port`` in its database (get_state), so VMs outlive
a restart of the hub (``c.JupyterHub.cleanup_servers = False``) and are found
again by pid and by the marker on their command line (:func:`vm.vm_marker`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from jupyterhub.spawner import Spawner
from jupyterhub.utils import random_port
from traitlets import Float, Integer, Unicode

from labkit.hub import exchange, limits, vm

__all__ = ["LabVMSpawner"]


class LabVMSpawner(Spawner):
    """One qemu VM per student (see the module's docstring)."""

    state_dir = Unicode("/var/lib/labkit-hub", config=True, help="where the students' disks live")
    image = Unicode("", config=True, help="the VM image new servers boot (a directory made by "
                    "tests/stock_kernel/build-image.sh; ./lab hub sets it)")
    vm_mem_mb = Integer(2048, config=True, help="the guest's RAM in MiB (BCC compiles inside it)")
    vm_cpus = Integer(1, config=True, help="the guest's vCPUs")
    vm_cpu_quota = Float(1.0, config=True, help="host CPU time the VM may use, in CPUs (cgroup)")
    home_size_mb = Integer(2048, config=True, help="size of a new student's home disk, in MiB")
    accel = Unicode("tcg", config=True, help="'kvm' where /dev/kvm works, else 'tcg'")
    qemu = Unicode("qemu-system-x86_64", config=True)
    hub_api_port = Integer(8081, config=True, help="the hub's API port on 127.0.0.1 (c.JupyterHub.hub_port)")
    stop_grace = Integer(30, config=True, help="seconds the guest has to shut down before it is killed")
    course_release = Unicode("", config=True, help="a course's release/ directory (labkit course release): "
                             "the students fetch and submit its lessons from JupyterLab's Assignments tab, "
                             "through nbgrader's exchange (./lab hub --course; labkit/hub/exchange.py)")

    pid = Integer(0)
    vm_port = Integer(0)

    # ------------------------------------------------------------------ state
    def get_state(self):
        state = super().get_state()
        if self.pid:
            state.update(pid=self.pid, port=self.vm_port)
        return state

    def load_state(self, state):
        super().load_state(state)
        self.pid = state.get("pid", 0)
        self.vm_port = state.get("port", 0)

    def clear_state(self):
        super().clear_state()
        self.pid = 0
        self.vm_port = 0

    # ------------------------------------------------------------------ paths
    @property
    def vm_name(self) -> str:
        return vm.check_name(self.user.name)

    @property
    def user_dir(self) -> Path:
        return Path(self.state_dir) / "users" / self.vm_name

    def _image(self) -> Path:
        image = Path(self.image).resolve()
        missing = [f for f in ("vmlinuz", "initrd.img", "rootfs.ext4") if not (image / f).is_file()]
        if not self.image or missing:
            raise RuntimeError(f"no VM image at {self.image!r} (missing {', '.join(missing)}): "
                               "start the hub with ./lab hub, which builds it")
        return image

    def _alive(self) -> bool:
        return bool(self.pid) and vm.vm_marker(self.vm_name) in vm.process_args(self.pid)

    # ------------------------------------------------------------------ start
    async def start(self):
        if self._alive():      # a VM of this student survived (a hub restart): reuse it
            return f"http://127.0.0.1:{self.vm_port}"
        image = self._image()
        d = self.user_dir
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)
        await asyncio.to_thread(vm.make_home_disk, d / "home.img", self.home_size_mb)
        spawn = d / "spawn"
        shutil.rmtree(spawn, ignore_errors=True)
        spawn.mkdir(mode=0o700)
        self.ip, self.port = vm.GUEST_IP, vm.JUPYTER_PORT      # where the server binds, inside the guest
        self.hub_connect_url = f"http://{vm.HUB_IN_GUEST}:{vm.HUB_PORT_IN_GUEST}"
        env_text = vm.guest_env(self.get_env(), self.hub.api_url)
        fd = os.open(spawn / "env", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(env_text)
        feedback = None
        if self.course_release:
            course = exchange.course_id(Path(self.course_release).parent)
            (spawn / "nbgrader_config.py").write_text(exchange.guest_config(course, self.vm_name))
            (spawn / "course_id").write_text(course + "\n")
            feedback = d / "feedback"      # labkit course release-feedback fills it: this student's own
            feedback.mkdir(mode=0o755, exist_ok=True)
        port = random_port()
        machine = vm.VM(name=self.vm_name, image=image, home=d / "home.img", spawn=spawn,
                        console=d / "console.log", port=port, hub_api_port=self.hub_api_port,
                        mem_mb=self.vm_mem_mb, cpus=self.vm_cpus, accel=self.accel,
                        socat=shutil.which("socat") or "/usr/bin/socat",
                        release=Path(self.course_release) if self.course_release else None,
                        feedback=feedback)
        argv = vm.qemu_argv(machine, self.qemu)
        log = open(d / "qemu.log", "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)    # outlives the hub (cleanup_servers=False)
        finally:
            log.close()
        self._proc = proc
        try:
            limits.apply(self.vm_name, proc.pid, limits.Limits(self.vm_mem_mb, self.vm_cpu_quota))
        except OSError as e:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"cannot limit {self.vm_name}'s VM with cgroups ({e}); "
                               "the hub needs a writable /sys/fs/cgroup") from e
        self.pid, self.vm_port = proc.pid, port
        self.log.info("labkit: VM of %s started (pid %d, 127.0.0.1:%d, image %s)",
                      self.vm_name, proc.pid, port, image.name)
        return f"http://127.0.0.1:{port}"

    # ------------------------------------------------------------------- poll
    async def poll(self):
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.pid == self.pid:
            rc = proc.poll()              # our child: reap it
            if rc is not None:
                limits.remove(self.vm_name)
                return rc if rc else 1    # a VM that ended is a stopped server, even on rc 0
            return None
        if self._alive():
            return None
        if self.pid:
            limits.remove(self.vm_name)
            return 1
        return 0

    # ------------------------------------------------------------------- stop
    async def stop(self, now=False):
        if not self._alive():
            self.clear_state_files()
            return
        stop_file = self.user_dir / "spawn" / "stop"
        if not now:
            stop_file.touch()       # the guest syncs and unmounts the student's disk, then powers off
            deadline = time.monotonic() + self.stop_grace
            while time.monotonic() < deadline and self._alive():
                await self._reap()
                await asyncio.sleep(0.5)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self._alive():
                break
            os.kill(self.pid, sig)
            for _ in range(20):
                await self._reap()
                if not self._alive():
                    break
                await asyncio.sleep(0.25)
        await self._reap()
        limits.remove(self.vm_name)
        self.clear_state_files()

    async def _reap(self):
        proc = getattr(self, "_proc", None)
        if proc is not None:
            proc.poll()

    def clear_state_files(self):
        shutil.rmtree(self.user_dir / "spawn", ignore_errors=True)   # the token goes with it
