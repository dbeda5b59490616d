"""The class server end to end: a real hub, real VMs under qemu, real students.

Run by tests/hub/run (not by ./lab test: each VM boots a kernel and JupyterLab,
minutes under TCG). One hub with three students, alice, bob and carol, each
in their own VM, all started at once; the steps are ordered tests sharing that
hub (-p no:randomly, -n 0): each student runs lesson 01 and an XDP drop,
isolation from inside the VMs, nbgrader's exchange (fetch, submit, collect,
autograde, feedback back), a full disk, a kernel panic, stop/start, a hub
restart, and `labkit hub stop` leaving nothing on the host. Measurements go to
test-artifacts/hub/measurements.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from concurrent.futures import ThreadPoolExecutor
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from labkit.commands.course import autograde, create, release
from labkit.hub import exchange, limits, vm

import sys
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_course import _answer  # noqa: E402
from test_exercises_01 import _CONDITION, student  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "hub"
IMAGES = Path(os.environ.get("LABKIT_HUB_IMAGES", "/var/cache/labkit-hub-images"))
BOOT_TIMEOUT = int(os.environ.get("LABKIT_HUB_BOOT_TIMEOUT", "900"))
MEASURED: dict[str, object] = {}
STUDENTS = ("alice", "bob", "carol")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self):
        self.state = Path(f"/var/tmp/labkit-hub-test-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self.port, self.api_port, self.proxy_port = _free_port(), _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(24)
        self.proc: subprocess.Popen | None = None
        self.state.mkdir(mode=0o700)
        # what the host has before: the hub must add no interface and no mount
        self.links_before = _links()
        # the teacher's course (lessons 01 and 03): the students fetch its release
        self.course = self.state / "course"
        create(self.course, ["01", "03"], points=2)
        release(self.course)
        # the teacher's override file: a service token for the test's API calls
        (self.state / "jupyterhub_config_local.py").write_text(
            "c.JupyterHub.services.append({'name': 'labkit-test', 'api_token': %r})\n"
            "c.JupyterHub.load_roles = list(c.JupyterHub.load_roles) + [{'name': 'labkit-test', "
            "'scopes': ['admin:users', 'admin:servers', 'access:servers', 'read:services'], "
            "'services': ['labkit-test']}]\n" % self.token)

    def start(self) -> float:
        t = time.monotonic()
        self.proc = subprocess.Popen(
            [str(ROOT / "scripts" / "hub.sh"), "--state", str(self.state), "--images", str(IMAGES),
             "--port", str(self.port), "--api-port", str(self.api_port),
             "--proxy-api-port", str(self.proxy_port), "--admin", "teacher", "--open-signup",
             "--home-mb", "256", "--mem", "1536", "--idle-timeout", "3600", "--accel", "tcg",
             "--course", str(self.course)]
            + (["--reuse-image"] if os.environ.get("LABKIT_HUB_REUSE_IMAGE") == "1" else []),
            stdout=open(self.state / "hub.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
            # the hub gives a server as long to start as the test waits for it (a loaded host under TCG)
            env=dict(os.environ, LABKIT_HUB_START_TIMEOUT=str(BOOT_TIMEOUT)))
        while time.monotonic() - t < 120:
            assert self.proc.poll() is None, "the hub ended: " + (self.state / "hub.log").read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/hub/api", timeout=2).status_code == 200:
                    return time.monotonic() - t
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("the hub did not answer in 120 s")

    def stop_hub(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def api(self, method: str, path: str, **kw):
        r = requests.request(method, f"{self.url}/hub/api{path}",
                             headers={"Authorization": f"token {self.token}"}, timeout=30, **kw)
        return r

    def user(self, name: str) -> dict:
        r = self.api("GET", f"/users/{name}")
        r.raise_for_status()
        return r.json()

    def wait_ready(self, name: str) -> float:
        t = time.monotonic()
        while time.monotonic() - t < BOOT_TIMEOUT:
            server = self.user(name)["servers"].get("")
            if server and server.get("ready"):
                return time.monotonic() - t
            if not server and time.monotonic() - t > 30:
                raise AssertionError(f"{name}'s server is gone: {self.console(name)}")
            time.sleep(2)
        raise AssertionError(f"{name}'s server was not ready in {BOOT_TIMEOUT} s: {self.console(name)}")

    def wait_stopped(self, name: str, within: float) -> float:
        t = time.monotonic()
        while time.monotonic() - t < within:
            if not self.user(name)["servers"]:
                return time.monotonic() - t
            time.sleep(1)
        raise AssertionError(f"{name}'s server still listed after {within} s")

    def console(self, name: str) -> str:
        p = self.state / "users" / name / "console.log"
        return p.read_text(errors="replace")[-3000:] if p.exists() else "(no console)"

    def qemu_pid(self, name: str) -> int | None:
        marker = vm.vm_marker(name)
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    if marker in p.joinpath("cmdline").read_bytes().decode(errors="replace").split("\0"):
                        return int(p.name)
                except OSError:
                    pass
        return None

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def run(self, name: str, code: str, timeout: float = 300) -> str:
        """Run ``code`` in a fresh kernel of ``name``'s server (through the proxy); its stdout."""
        base = f"{self.url}/user/{name}/api"
        r = requests.post(f"{base}/kernels", json={"name": "labkit"}, headers=self.headers, timeout=60)
        r.raise_for_status()
        kid = r.json()["id"]
        try:
            return asyncio.run(asyncio.wait_for(_execute(
                f"ws://127.0.0.1:{self.port}/user/{name}/api/kernels/{kid}/channels", self.headers, code), timeout))
        finally:
            requests.delete(f"{base}/kernels/{kid}", headers=self.headers, timeout=60)

    def run_notebook(self, name: str, path: str, cell_timeout: float = 900) -> int:
        """Every code cell of the notebook at ``path`` in ``name``'s server, in order, in one
        kernel of a session on that notebook (as JupyterLab runs it); the number of cells run."""
        base = f"{self.url}/user/{name}/api"
        nb = requests.get(f"{base}/contents/{path}", headers=self.headers, timeout=60).json()["content"]
        r = requests.post(f"{base}/sessions", headers=self.headers, timeout=120,
                          json={"path": path, "type": "notebook", "name": path, "kernel": {"name": "labkit"}})
        r.raise_for_status()
        session, kid = r.json()["id"], r.json()["kernel"]["id"]
        url = f"ws://127.0.0.1:{self.port}/user/{name}/api/kernels/{kid}/channels"
        ran = 0
        try:
            for cell in nb["cells"]:
                if cell["cell_type"] != "code" or not cell["source"].strip():
                    continue
                expect_error = "raises-exception" in (cell["metadata"].get("tags") or [])
                try:
                    asyncio.run(asyncio.wait_for(_execute(url, self.headers, cell["source"]), cell_timeout))
                except AssertionError:
                    if not expect_error:
                        raise AssertionError(f"{name}: a cell of {path} failed:\n{cell['source'][:300]}") from None
                ran += 1
        finally:
            requests.delete(f"{base}/sessions/{session}", headers=self.headers, timeout=60)
        return ran

    def assignments(self, name: str, action: str | None = None, assignment: str = "lesson01") -> list[dict]:
        """The Assignments tab of ``name``'s JupyterLab: the list, or a press of fetch / submit /
        fetch_feedback (nbgrader's own server extension in their VM)."""
        course = exchange.course_id(self.course)
        if action is None:
            r = requests.get(f"{self.url}/user/{name}/assignments", params={"course_id": course},
                             headers=self.headers, timeout=300)
        else:
            r = requests.post(f"{self.url}/user/{name}/assignments/{action}", headers=self.headers, timeout=300,
                              json={"course_id": course, "assignment_id": assignment})
        r.raise_for_status()
        out = r.json()
        assert out.get("success", True), out
        return out["value"]

    def give_back(self):
        for name in STUDENTS:
            if self.proc and self.proc.poll() is None:
                self.api("DELETE", f"/users/{name}/server")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(self.qemu_pid(n) for n in STUDENTS):
            time.sleep(1)
        self.stop_hub()
        for name in STUDENTS:
            pid = self.qemu_pid(name)
            if pid:
                os.kill(pid, signal.SIGKILL)
            limits.remove(name)
        pidfile = self.state / "proxy.pid"     # the proxy outlives the hub on purpose: not the test's
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
        # the logs stay in test-artifacts/hub/ (the disks and the tokens go)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for log in [self.state / "hub.log", *self.state.glob("users/*/console.log"), *self.state.glob("users/*/qemu.log")]:
            rel = log.relative_to(self.state)
            (ARTIFACTS / str(rel).replace("/", "-")).write_bytes(log.read_bytes())
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.state)], check=False)


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


async def _execute(url: str, headers: dict, code: str) -> str:
    # a loaded host under TCG takes its time to open a kernel's channel (60 s seen): tornado's 20 s is short
    ws = await websocket_connect(HTTPRequest(url, headers=headers, connect_timeout=300, request_timeout=300))
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    out, error = [], None
    while True:
        raw = await ws.read_message()
        if raw is None:
            raise ConnectionError("the kernel's channel closed")
        if isinstance(raw, bytes):
            # a message with binary buffers (a widget's comm): Jupyter's binary frame is a
            # count n, n big-endian offsets, the message's JSON, then the buffers
            n = int.from_bytes(raw[:4], "big")
            offsets = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(n)]
            raw = raw[offsets[0]:offsets[1] if n > 1 else None]
        m = json.loads(raw)
        if m.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = m["header"]["msg_type"]
        if kind == "stream":
            out.append(m["content"]["text"])
        elif kind == "error":
            error = "\n".join(m["content"]["traceback"])
        elif kind == "status" and m["content"]["execution_state"] == "idle":
            break
    ws.close()
    if error:
        raise AssertionError("the code failed in the VM:\n" + re.sub(r"\x1b\[[0-9;]*m", "", error))
    return "".join(out)


@pytest.fixture(scope="module")
def hub():
    h = Hub()
    try:
        MEASURED["hub_start_s"] = round(h.start(), 1)
        yield h
    finally:
        h.give_back()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "measurements.json").write_text(json.dumps(MEASURED, indent=1) + "\n")


def _form(session: requests.Session, url: str, data: dict) -> requests.Response:
    session.get(url, timeout=30)
    data = dict(data, _xsrf=session.cookies.get("_xsrf", ""))
    return session.post(url, data=data, timeout=60)


def _sign_up_and_log_in(hub, name: str, password: str) -> requests.Session:
    """A student's browser: NativeAuthenticator's sign-up form, then its login form."""
    s = requests.Session()
    r = _form(s, f"{hub.url}/hub/signup", {"username": name, "signup_password": password,
                                          "signup_password_confirmation": password})
    assert r.status_code == 200, r.text[-500:]
    r = _form(s, f"{hub.url}/hub/login", {"username": name, "password": "wrong-password-1"})
    assert name not in {u["name"] for u in hub.api("GET", "/users").json()}   # not logged in
    r = _form(s, f"{hub.url}/hub/login", {"username": name, "password": password})
    assert r.status_code == 200, r.text[-500:]
    assert name in {u["name"] for u in hub.api("GET", "/users").json()}
    return s


@pytest.fixture(scope="module")
def browsers(hub):
    return {name: _sign_up_and_log_in(hub, name, f"Ebpf-lab-2026-{name}!") for name in STUDENTS}


@pytest.fixture(scope="module")
def alice(browsers):
    return browsers["alice"]


def test_three_students_each_get_their_own_vm(hub, browsers, alice):
    t = time.monotonic()
    for name in STUDENTS:                                   # each presses "Start My Server"
        browsers[name].get(f"{hub.url}/hub/spawn", timeout=60)
    ready = {}
    for name in STUDENTS:
        hub.wait_ready(name)
        ready[name] = round(time.monotonic() - t, 1)
    MEASURED["boot_to_jupyterlab_s_three_at_once"] = ready
    pids = {n: hub.qemu_pid(n) for n in STUDENTS}
    assert all(pids.values()) and len(set(pids.values())) == 3
    # alice's browser: JupyterLab through the proxy and the hub's OAuth (the VM asks
    # the hub's API through its guestfwd)
    r = alice.get(f"{hub.url}/user/alice/lab", timeout=120)
    assert r.status_code == 200 and "JupyterLab" in r.text, r.text[-500:]
    # and not bob's
    r = alice.get(f"{hub.url}/user/bob/api/status", timeout=60, allow_redirects=False)
    assert r.status_code in (302, 403, 404)
    contents = requests.get(f"{hub.url}/user/alice/api/contents", timeout=60, headers=hub.headers).json()
    names = {c["name"] for c in contents["content"]}
    # the lab's own lessons (the image's, by `labkit lessons update`) ...
    assert {"01-hello-clone.ipynb", "02-xdp-ping-drop.ipynb", "03-maps-vs-events.ipynb"} <= names, names
    # ... and the course's in the Assignments tab, released, not fetched yet
    assert {(a["assignment_id"], a["status"]) for a in hub.assignments("carol")} == \
        {("lesson01", "released"), ("lesson03", "released")}


def test_each_student_runs_lesson_01_and_an_xdp_drop(hub, alice):
    xdp = ("import json, labkit\n"
           "lab = labkit.Lab(); sb = labkit.Sandbox()\n"
           "before = sb.ping(count=3, interval=0.2, timeout=2)\n"
           "x = lab.attach_xdp('xdp_icmp_drop', iface=sb.target_iface, netns=sb.target_ns)\n"
           "during = sb.ping(count=5, interval=0.2, timeout=1)\n"
           "dropped = x.packets('drop', 'icmp')\n"
           "lab.close()\n"
           "after = sb.ping(count=3, interval=0.2, timeout=2)\n"
           "sb.close()\n"
           "print(json.dumps([before.received, during.received, dropped, after.received]))\n")

    def one(name):
        t = time.monotonic()
        cells = hub.run_notebook(name, "01-hello-clone.ipynb")
        lesson_s = time.monotonic() - t
        got = json.loads(hub.run(name, xdp, timeout=900).strip().splitlines()[-1])
        return name, cells, round(lesson_s, 1), got

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, STUDENTS))
    MEASURED["lesson01_three_at_once_s"] = {n: s for n, _, s, _ in results}
    for name, cells, _, (before, during, dropped, after) in results:
        assert cells >= 10, (name, cells)
        assert before == 3 and during == 0 and dropped >= 5 and after == 3, (name, before, during, dropped, after)


def test_each_vm_has_its_own_kernel_and_sees_nothing_of_the_other(hub, alice):
    probe = ("import os, subprocess, platform\n"
             "print(platform.release()); print(open('/proc/sys/kernel/random/boot_id').read().strip())\n")
    a = hub.run("alice", probe).split()
    b_code = ("from bcc import BPF\nimport subprocess, platform, time\n"
              "b = BPF(text='int lk_bob_secret(void *ctx) { return 0; }')\n"
              "b.load_func('lk_bob_secret', BPF.SOCKET_FILTER)\n"
              "subprocess.Popen(['bash', '-c', 'exec -a lk-bob-marker sleep 120'])\n"
              "time.sleep(1)\n"
              "print(subprocess.run(['bpftool', 'prog', 'show'], capture_output=True, text=True).stdout.count('lk_bob_secret'))\n"
              "print(subprocess.run(['ps', '-eo', 'args'], capture_output=True, text=True).stdout.count('lk-bob-marker'))\n"
              "print(open('/proc/sys/kernel/random/boot_id').read().strip())\n")
    b = hub.run("bob", b_code).split()
    assert a[0] == platform_release(hub) and re.match(r"^6\.1\.\d+", a[0]), a   # Debian's stock kernel
    assert b[0] == "1" and b[1] == "1"                       # bob's program and process exist in bob's VM
    assert a[1] != b[2]                                      # two kernels
    seen = hub.run("alice", "import subprocess\n"
                   "print(subprocess.run(['bpftool', 'prog', 'show'], capture_output=True, text=True).stdout.count('lk_bob_secret'))\n"
                   "print(subprocess.run(['ps', '-eo', 'args'], capture_output=True, text=True).stdout.count('lk-bob-marker'))\n"
                   "print(len(open('/proc/net/dev').read().splitlines()))\n").split()
    assert seen[:2] == ["0", "0"], seen                      # nothing of bob's: no program, no process


def platform_release(hub) -> str:
    image = Path(os.readlink(IMAGES / "current"))
    return re.search(r"^kernel: (\S+)", (IMAGES / image / "manifest.txt").read_text(), re.M).group(1)


def test_a_vm_reaches_the_hubs_api_and_nothing_else(hub, alice):
    # a listener on the host's loopback, as any host service: no VM may reach it
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    lst.settimeout(0.1)
    # bob's VM's port on the host, from its qemu's hostfwd
    argv = Path(f"/proc/{hub.qemu_pid('bob')}/cmdline").read_bytes().decode().split("\0")
    bob_vm = int(re.search(r"hostfwd=tcp:127\.0\.0\.1:(\d+)-", " ".join(argv)).group(1))
    targets = {"hub API (guestfwd)": ("198.18.200.100", 8081),
               "slirp host: the hub's public port": ("198.18.200.2", hub.port),
               "slirp host: the hub's API": ("198.18.200.2", hub.api_port),
               "slirp host: a host service": ("198.18.200.2", lst.getsockname()[1]),
               "slirp host: ssh": ("198.18.200.2", 22),
               "the lab range beside the guest": ("198.18.200.3", 80)}
    targets["slirp host: bob's VM"] = ("198.18.200.2", bob_vm)
    code = ("import socket, json\nres = {}\n"
            f"for name, (host, port) in {targets!r}.items():\n"
            "    try:\n"
            "        s = socket.create_connection((host, port), timeout=5)\n"
            "        s.sendall(b'GET /hub/api HTTP/1.0\\r\\n\\r\\n'); s.settimeout(5)\n"
            "        res[name] = s.recv(200).decode(errors='replace')[:40] or 'open, no answer'\n"
            "        s.close()\n"
            "    except OSError as e:\n"
            "        res[name] = 'refused: ' + type(e).__name__\n"
            "print(json.dumps(res))\n")
    res = json.loads(hub.run("alice", code))
    try:
        lst.accept()
        reached_host = True
    except (socket.timeout, BlockingIOError):
        reached_host = False
    finally:
        lst.close()
    MEASURED["network_from_alice"] = res
    assert res["hub API (guestfwd)"].startswith("HTTP/1."), res
    others = {k: v for k, v in res.items() if k != "hub API (guestfwd)"}
    # slirp with restrict=on accepts nothing but the forwards: a connect fails or
    # gets no bytes from anything (the forwarded port is the only open one)
    assert all(v.startswith("refused") or v == "open, no answer" for v in others.values()), res
    assert not reached_host


def test_a_full_disk_is_the_students_own(hub, alice):
    code = ("import subprocess\n"
            "r = subprocess.run(['dd', 'if=/dev/zero', 'of=/home/student/fill', 'bs=1M', 'count=400'],"
            " capture_output=True, text=True)\n"
            "print(r.returncode, 'No space left' in r.stderr)\n"
            "subprocess.run(['rm', '-f', '/home/student/fill']); subprocess.run(['sync'])\n")
    rc, nospace = hub.run("alice", code).split()
    assert rc != "0" and nospace == "True"
    assert (hub.state / "users" / "alice" / "home.img").stat().st_size == 256 * 1024 * 1024
    assert hub.user("bob")["servers"][""]["ready"]
    assert requests.get(f"{hub.url}/user/bob/api/status", headers={"Authorization": f"token {hub.token}"},
                        timeout=60).status_code == 200


def test_memory_per_vm(hub, alice):
    idle = limits.usage_bytes("alice")
    code = ("from bcc import BPF\nimport resource\n"
            "b = BPF(text='int lk_m(void *ctx) { return 0; }'); b.load_func('lk_m', BPF.SOCKET_FILTER)\n"
            "print('ok')\n")
    assert hub.run("alice", code).strip() == "ok"
    busy = limits.usage_bytes("alice")
    rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{hub.qemu_pid('alice')}/status").read_text()).group(1))
    MEASURED.update(vm_mem_mb=1536, cgroup_idle_mb=round(idle / 2**20), cgroup_after_bcc_compile_mb=round(busy / 2**20),
                    qemu_rss_mb=round(rss / 1024))
    cap = (1536 + limits.QEMU_OVERHEAD_MB) * 2**20       # the cgroup's limit holds qemu under it
    assert 0 < idle <= cap and 0 < busy <= cap


def test_work_survives_stop_start_and_a_hub_restart(hub, alice):
    h = {"Authorization": f"token {hub.token}"}
    r = requests.put(f"{hub.url}/user/alice/api/contents/mine.txt", headers=h, timeout=60,
                     json={"type": "file", "format": "text", "content": "alice's answer"})
    assert r.status_code in (200, 201), r.text
    hub.run("alice", "import os; os.sync(); print('synced')")
    assert hub.api("DELETE", "/users/alice/server").status_code in (202, 204)
    hub.wait_stopped("alice", 120)
    assert hub.qemu_pid("alice") is None
    t = time.monotonic()
    assert hub.api("POST", "/users/alice/server").status_code in (201, 202)
    hub.wait_ready("alice")
    MEASURED["boot_to_jupyterlab_s_one"] = round(time.monotonic() - t, 1)
    r = requests.get(f"{hub.url}/user/alice/api/contents/mine.txt", headers=h, timeout=60)
    assert r.status_code == 200 and r.json()["content"] == "alice's answer"
    # the hub restarts; the VMs and the proxy go on
    pid = hub.qemu_pid("alice")
    hub.stop_hub()
    assert hub.qemu_pid("alice") == pid
    MEASURED["hub_restart_s"] = round(hub.start(), 1)
    assert hub.user("alice")["servers"][""]["ready"]
    r = requests.get(f"{hub.url}/user/alice/api/contents/mine.txt", headers=h, timeout=60)
    assert r.status_code == 200 and r.json()["content"] == "alice's answer"


def test_the_course_goes_through_nbgrader_s_exchange(hub, alice, tmp_path):
    course = hub.course
    # alice fetches lesson 01 in her Assignments tab, answers it and submits
    assert ("lesson01", "fetched") in {(a["assignment_id"], a["status"]) for a in hub.assignments("alice", "fetch")}
    url = f"{hub.url}/user/alice/api/contents/lesson01/01-hello-clone.ipynb"
    nb = requests.get(url, headers=hub.headers, timeout=60).json()["content"]
    _answer(nb, "lesson01-q1-answer", "my_filter = \"pid == @me and kind == 'thread'\"")
    _answer(nb, "lesson01-q2-answer", "%%bpf my_program\n" + student(_CONDITION))
    r = requests.put(url, headers=hub.headers, timeout=60, json={"type": "notebook", "format": "json", "content": nb})
    assert r.status_code == 200, r.text
    assert any(a["status"] == "submitted" for a in hub.assignments("alice", "submit"))
    hub.run("alice", "import os; os.sync(); print('synced')")
    # bob, root in his VM, submits in alice's name; carol's exchange shows nothing of alice's
    hub.assignments("bob", "fetch")
    forged = hub.run("bob", "import os, subprocess, sys\n"
                     "r = subprocess.run([sys.executable, '-m', 'nbgrader', 'submit', 'lesson01', '--student', 'alice'],"
                     " cwd='/home/student/notebooks', capture_output=True, text=True)\n"
                     "os.sync(); print(r.returncode, os.listdir('/home/student/.nbgrader/inbound'))\n")
    assert forged.startswith("0 ") and "alice+lesson01+" in forged, forged
    seen = json.loads(hub.run("carol", "import os, json\n"
                              f"ex = '/srv/nbgrader/exchange/{exchange.course_id(course)}'\n"
                              "print(json.dumps([os.listdir(ex + '/inbound'), os.listdir(ex + '/feedback')]))\n"
                              ).strip())
    assert seen == [[], []], seen
    # the teacher collects from the disks, grades, and hands the feedback back
    lab = str(ROOT / ".venv" / "bin" / "labkit")
    r = subprocess.run([lab, "course", "collect", str(course), "--hub", str(hub.state), "--assignment", "lesson01"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.split() and line.split()[0] in STUDENTS}
    assert " submitted" in lines["alice"] and "refused" not in lines["alice"], r.stdout
    assert "not submitted (1 refused: they name another student)" in lines["bob"], r.stdout
    assert "not submitted" in lines["carol"], r.stdout
    got = json.loads((course / "submitted" / "alice" / "lesson01" / "01-hello-clone.ipynb").read_text())
    assert any("pid == @me and kind == 'thread'" in "".join(c["source"]) for c in got["cells"])
    graded = autograde(course, ["lesson01"], ["alice"], feedback=True)
    assert [g.ok for g in graded] == [True], graded[0].log[-2000:]
    r = subprocess.run([lab, "course", "release-feedback", str(course), "--hub", str(hub.state)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "1 feedback files released" in r.stdout, r.stdout + r.stderr
    # alice presses "Fetch Feedback": the HTML is in her lesson01/feedback/
    after = hub.assignments("alice", "fetch_feedback")
    assert any(s.get("has_local_feedback") for a in after for s in a.get("submissions", [])), after
    listing = hub.run("alice", "import glob; print('\\n'.join(glob.glob("
                      "'/home/student/notebooks/lesson01/feedback/*/01-hello-clone.html')))").splitlines()
    assert len(listing) == 1, listing
    assert not os.listdir(hub.state / "users" / "carol" / "feedback")


def test_a_panic_ends_only_that_students_server(hub, alice):
    with pytest.raises(Exception):
        hub.run("bob", "open('/proc/sysrq-trigger', 'w').write('c')", timeout=60)
    # the hub polls its spawners (Spawner.poll_interval, 30 s)
    MEASURED["panic_to_stopped_s"] = round(hub.wait_stopped("bob", 120), 1)
    assert hub.qemu_pid("bob") is None
    assert "Kernel panic" in hub.console("bob")
    assert hub.run("alice", "print(1 + 1)").strip() == "2"
    assert hub.run("carol", "print(2 + 2)").strip() == "4"


def test_hub_stop_leaves_nothing_on_the_host(hub, alice):
    assert hub.qemu_pid("alice") and hub.qemu_pid("carol")
    r = subprocess.run([str(ROOT / "lab"), "hub", "stop", "--state", str(hub.state)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing of it is left running" in r.stdout
    assert not [n for n in STUDENTS if hub.qemu_pid(n)]
    assert hub.proc.wait(30) is not None                                     # the hub ended
    assert _links() == hub.links_before                                      # no tap, no bridge
    assert str(hub.state) not in Path("/proc/mounts").read_text()            # no mount
    assert not any(limits.held(n) for n in STUDENTS)                         # no cgroup
    assert (hub.state / "users" / "alice" / "home.img").exists()             # the students' disks stay
