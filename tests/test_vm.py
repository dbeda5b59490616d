"""The students' VM (Vagrantfile), the conda path (environment.yml) and the
Jupyter server that `./lab start` runs (scripts/start-jupyter.sh), including the
capability-only kernel `labkit-caps`.

Run as root: cd /work/main && .venv/bin/python -m pytest tests/test_vm.py -q
The first run installs Debian's vagrant (apt) once. Only loopback traffic.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VAGRANTFILE = ROOT / "Vagrantfile"
START = ROOT / "scripts" / "start-jupyter.sh"
SETUP = ROOT / "scripts" / "setup.sh"
SERVICE = ROOT / "scripts" / "install-service.sh"   # labkit.service: the Vagrantfile and lima/labkit.yaml run it

# CAP_DAC_READ_SEARCH=2, CAP_NET_ADMIN=12, CAP_PERFMON=38, CAP_BPF=39
CAPS_MASK = (1 << 2) | (1 << 12) | (1 << 38) | (1 << 39)
NOBODY = 65534

# the first Vagrant test may install vagrant (apt) in its fixture: minutes, once
vagrant_timeout = pytest.mark.timeout(1800)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (run the suite as root, like ./lab test)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------- Vagrant
@pytest.fixture(scope="module")
def vagrant(tmp_path_factory):
    """Debian's vagrant (installed once, as the project's setup would), run
    hermetically: its home and .vagrant dir in a temp dir, no update checks."""
    exe = shutil.which("vagrant")
    if exe is None:
        if os.geteuid() != 0:
            pytest.skip("vagrant is not installed and installing it needs root")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "vagrant"],
                           env=env, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:  # the package lists may be stale or missing
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "vagrant"],
                           env=env, check=True, capture_output=True, timeout=1800)
        exe = shutil.which("vagrant")
    assert exe, "vagrant did not install"
    tmp = tmp_path_factory.mktemp("vagrant")
    env = dict(os.environ,
               VAGRANT_HOME=str(tmp / "home"),
               VAGRANT_DOTFILE_PATH=str(tmp / "dot"),
               VAGRANT_CHECKPOINT_DISABLE="1",
               VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
               VAGRANT_NO_COLOR="1")
    for k in ("LABKIT_HOST_PORT", "LABKIT_VM_IP", "LABKIT_VM_MEMORY", "LABKIT_BRIDGE", "LABKIT_BRIDGE_IP",
              "LABKIT_STUDENT_RELEASE",
              "VAGRANT_CWD", "VAGRANT_VAGRANTFILE"):
        env.pop(k, None)
    return exe, env, tmp


@pytest.mark.slow
@vagrant_timeout
def test_vagrantfile_validates(vagrant):
    exe, env, _ = vagrant
    had_dot = (ROOT / ".vagrant").exists()
    r = subprocess.run([exe, "validate", "-p"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout
    assert had_dot or not (ROOT / ".vagrant").exists(), "the test must not leave .vagrant/ in the repo"


# Loads the Vagrantfile with Vagrant's own config loader and prints, for each
# provider, the merged provisioners, networks and synced folders as JSON.
_INSPECT_RB = r'''
gem "vagrant"
$LOAD_PATH.unshift(Gem.loaded_specs["vagrant"].full_gem_path + "/lib")
require "vagrant"
require "json"
env = Vagrant::Environment.new(cwd: ARGV[0], home_path: ARGV[1], local_data_path: ARGV[2])
out = {}
[:virtualbox, :libvirt].each do |prov|
  cfg = env.vagrantfile.machine_config(:default, prov, env.boxes, nil, false)[:config]
  vb = prov == :virtualbox ? cfg.vm.get_provider_config(:virtualbox) : nil
  out[prov] = {
    box: cfg.vm.box,
    provisioners: cfg.vm.provisioners.map { |p|
      {name: p.name.to_s, type: p.type.to_s, inline: p.config.inline, path: p.config.path,
       args: p.config.args, privileged: p.config.privileged} },
    networks: cfg.vm.networks.map { |t, o| {type: t.to_s}.merge(o) },
    synced_folders: cfg.vm.synced_folders.values.map { |f| f.reject { |k, _| k.to_s.start_with?("__") } },
    vb_customize: vb && vb.customizations.map { |event, cmd| cmd.map(&:to_s) },
  }
end
puts JSON.generate(out)
'''


def _inspect_vagrantfile(vagrant, **extra_env):
    exe, env, tmp = vagrant
    script = tmp / "inspect.rb"
    script.write_text(_INSPECT_RB)
    ruby = shutil.which("ruby") or "/usr/bin/ruby"
    r = subprocess.run([ruby, str(script), str(ROOT), env["VAGRANT_HOME"], env["VAGRANT_DOTFILE_PATH"]],
                       env=dict(env, **extra_env), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def vagrant_config(vagrant):
    return _inspect_vagrantfile(vagrant)


def _synced_folders(cfg):
    """(the repository's folder, the shipped lessons' mirror): the two enabled synced folders."""
    folders = [f for f in cfg["synced_folders"] if not f.get("disabled")]
    assert len(folders) == 2, folders
    (repo,) = [f for f in folders if f["hostpath"] == "."]
    (shipped,) = [f for f in folders if f["hostpath"] == "notebooks"]
    return repo, shipped


@pytest.mark.slow
@vagrant_timeout
def test_vagrant_sync_never_writes_the_students_lessons(vagrant_config):
    """The repository's rsync leaves the lessons alone (no --update: an autosaved lesson
    never got a fix); the shipped notebooks go to an exact mirror that labkit.service's
    `labkit lessons update` installs from (tests/test_lessons_cmd.py replays the two rsyncs)."""
    for prov, cfg in vagrant_config.items():
        repo, shipped = _synced_folders(cfg)
        assert repo["type"] == shipped["type"] == "rsync", prov
        assert "--update" not in repo["rsync__args"] and "--delete" not in repo["rsync__args"], repo
        assert {"/notebooks/[0-9][0-9]-*.ipynb", "/notebooks/index.ipynb", "/.lessons-shipped/"} <= \
            set(repo["rsync__exclude"]), repo["rsync__exclude"]
        assert shipped["guestpath"] == "/home/vagrant/labkit/.lessons-shipped", shipped
        assert "--delete" in shipped["rsync__args"] and "--update" not in shipped["rsync__args"], shipped
        assert "bpf_snippets" in shipped["rsync__exclude"] and "*.mine-*.ipynb" in shipped["rsync__exclude"]
        service = [p for p in cfg["provisioners"] if p["name"] == "labkit-service"][0]["inline"]
        assert _runs_service_script(service), service
        pre = re.search(r"^ExecStartPre=(.*)$", SERVICE.read_text(), re.M).group(1)
        assert pre.startswith("-") and "-m labkit lessons --root $guest_dir update" in pre, pre


@pytest.mark.slow
@vagrant_timeout
def test_vagrant_student_release_leaves_the_solutions_out(vagrant, vagrant_config):
    """LABKIT_STUDENT_RELEASE=1 (a graded course's VM): the reference solutions are not
    synced, so the framework's student_release() holds there; by default they are."""
    for prov, cfg in vagrant_config.items():
        repo, _ = _synced_folders(cfg)
        assert not [x for x in repo["rsync__exclude"] if "solution" in x], (prov, repo["rsync__exclude"])
    for prov, cfg in _inspect_vagrantfile(vagrant, LABKIT_STUDENT_RELEASE="1").items():
        repo, _ = _synced_folders(cfg)
        assert "/bpf_snippets/solution_*" in repo["rsync__exclude"], (prov, repo["rsync__exclude"])


@pytest.mark.slow
@vagrant_timeout
def test_vagrant_bridge_is_an_option(vagrant):
    """LABKIT_BRIDGE=<host iface> adds one bridged network per provider (VirtualBox:
    bridged adapter; libvirt: macvtap on that device), DHCP or LABKIT_BRIDGE_IP; the
    host-only network and the loopback-only forward stay as they are."""
    cfg = _inspect_vagrantfile(vagrant, LABKIT_BRIDGE="enp0s31f6")
    for prov, c in cfg.items():
        (pub,) = [n for n in c["networks"] if n["type"] == "public_network"]
        if prov == "virtualbox":
            assert pub["bridge"] == "enp0s31f6", pub
        else:
            assert pub["dev"] == "enp0s31f6" and pub["mode"] == "bridge", pub
        assert "ip" not in pub, pub                     # DHCP (Vagrant drops its default route)
        assert not pub.get("use_dhcp_assigned_default_route"), pub
        priv = [n for n in c["networks"] if n["type"] == "private_network"]
        assert len(priv) == 1 and priv[0]["ip"] == "192.168.56.10"
        assert _jupyter_forward(c)["host_ip"] == "127.0.0.1"
    cfg = _inspect_vagrantfile(vagrant, LABKIT_BRIDGE="wlan0", LABKIT_BRIDGE_IP="10.20.30.40")
    for prov, c in cfg.items():
        (pub,) = [n for n in c["networks"] if n["type"] == "public_network"]
        assert pub["ip"] == "10.20.30.40", (prov, pub)
    text = VAGRANTFILE.read_text()
    assert "LABKIT_BRIDGE" in text and "off by default" in text.lower()


def _runs_service_script(inline: str) -> bool:
    """The provisioner's inline script is one line: run scripts/install-service.sh from the synced repo
    with the provisioner's arguments."""
    return inline.split() == ["exec", "bash", "/home/vagrant/labkit/scripts/install-service.sh", '"$@"']


def _service_args(cfg):
    (svc,) = [p for p in cfg["provisioners"] if p["name"] == "labkit-service"]
    return svc["args"]


def _jupyter_forward(cfg):
    fwd = [n for n in cfg["networks"] if n["type"] == "forwarded_port" and n["guest"] == 8888]
    assert len(fwd) == 1, fwd
    return fwd[0]


@pytest.mark.slow
@vagrant_timeout
def test_vagrant_providers_box_network_and_forward(vagrant_config):
    for prov, cfg in vagrant_config.items():
        assert cfg["box"] in ("debian/bookworm64", "bento/ubuntu-24.04", "ubuntu/noble64"), prov
        fwd = _jupyter_forward(cfg)
        # the host's loopback only, and never silently another port
        assert fwd["host_ip"] == "127.0.0.1" and fwd["host"] == 8888 and fwd["auto_correct"] is False, fwd
        priv = [n for n in cfg["networks"] if n["type"] == "private_network"]
        assert len(priv) == 1 and priv[0]["ip"].startswith("192.168.56."), priv
        # the repository is synced into the VM, without the host's venv
        sf, shipped = _synced_folders(cfg)
        assert sf["hostpath"] == "." and sf["guestpath"] == "/home/vagrant/labkit"
        assert ".venv/" in sf["rsync__exclude"]
        # no bridged network unless LABKIT_BRIDGE says so
        assert not [n for n in cfg["networks"] if n["type"] == "public_network"], cfg["networks"]
    vbox, libvirt = vagrant_config["virtualbox"], vagrant_config["libvirt"]
    modifyvm = {c[2]: c[3] for c in vbox["vb_customize"] if c[:2] == ["modifyvm", "id"]}
    assert modifyvm["--cpus"] == "2" and 2048 <= int(modifyvm["--memory"]) <= 4096, modifyvm
    # VirtualBox's NAT forwards to the NAT address: the server listens there only;
    # libvirt's forward is an ssh tunnel that ends on the VM's loopback.
    assert _service_args(vbox)[0] == "default-route"
    assert _service_args(libvirt)[0] == "127.0.0.1"
    assert _jupyter_forward(libvirt)["guest_ip"] == "127.0.0.1"
    assert "guest_ip" not in _jupyter_forward(vbox)


@pytest.mark.slow
@vagrant_timeout
def test_vagrant_provisions_with_the_readme_setup_script(vagrant_config):
    """The VM provisions with scripts/setup.sh, the script ./lab runs for the
    README's commands, from the synced repo, and installs nothing of its own."""
    lab = (ROOT / "lab").read_text()
    assert '"$ROOT/scripts/setup.sh"' in lab  # ./lab start / ./lab test run it
    assert "./lab start" in (ROOT / "README.md").read_text()
    for prov, cfg in vagrant_config.items():
        names = [p["name"] for p in cfg["provisioners"]]
        assert names == ["labkit-setup", "labkit-service"], (prov, names)
        setup, service = cfg["provisioners"]
        assert setup["type"] == "shell" and setup["privileged"] is not False
        assert setup["inline"].split() == ["exec", "bash", "/home/vagrant/labkit/scripts/setup.sh"], setup
        assert _runs_service_script(service["inline"]), service
        assert service["args"][2] == "/home/vagrant/labkit" and service["args"][4] == "vagrant", service["args"]
        for p in cfg["provisioners"]:
            text = (p["inline"] or "") + (p["path"] or "")
            assert not re.search(r"\b(apt-get|apt|dpkg|pip3?|yum|dnf)\b\s+(-\S+\s+)*install", text), (prov, p["name"])
    # ... nor does the service script it runs
    assert not re.search(r"\b(apt-get|apt|dpkg|pip3?|yum|dnf)\b\s+(-\S+\s+)*install", SERVICE.read_text())
    # the lab is started by ./lab start (which runs setup.sh again, then the server)
    unit = re.search(r"^ExecStart=(.*)$", SERVICE.read_text(), re.M).group(1)
    assert re.match(r"(/bin/bash )?\$guest_dir/lab start ", unit), unit
    text = VAGRANTFILE.read_text()
    assert not re.search(r"\bapt(-get)?\b[^\n]*\binstall\b", text)
    assert text.count("scripts/setup.sh") >= 1 and SETUP.exists()


def _service_script(vagrant_config):
    """scripts/install-service.sh, which every provider's labkit-service provisioner runs."""
    for cfg in vagrant_config.values():
        (svc,) = [p for p in cfg["provisioners"] if p["name"] == "labkit-service"]
        assert _runs_service_script(svc["inline"]), svc
    assert os.access(SERVICE, os.X_OK), f"{SERVICE} must be executable"
    return SERVICE.read_text()


@pytest.mark.slow
@vagrant_timeout
def test_vagrant_service_script_is_valid(vagrant_config, tmp_path):
    script = _service_script(vagrant_config)
    f = tmp_path / "service.sh"
    f.write_text(script)
    r = subprocess.run(["bash", "-n", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # every option the unit passes to `./lab start` is one start-jupyter.sh knows
    unit = re.search(r"^ExecStart=(.*)$", script, re.M).group(1)
    known = set(re.findall(r"^\s+(--[a-z-]+)\)", START.read_text(), re.M))
    used = set(re.findall(r"(?<!\S)(--[a-z-]+)", unit))
    assert used and used <= known, used - known
    # the token stays out of the unit and the journal: a 0600 file, read by labkit-url
    assert "--url-file /run/labkit/url" in unit and "--token-file" in unit
    assert "RuntimeDirectoryMode=0700" in script and "/usr/local/bin/labkit-url" in script
    # the unit it writes is one systemd accepts
    if shutil.which("systemd-analyze"):
        body = re.search(r"cat > /etc/systemd/system/labkit.service <<EOF\n(.*?)\nEOF\n", script, re.S).group(1)
        body = body.replace("$guest_dir", str(ROOT)).replace("$caps_user", "nobody").replace("\\$", "$")
        (tmp_path / "labkit.service").write_text(body + "\n")
        r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "labkit.service")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and not re.search(r"Unknown|Invalid|Failed|ignoring", r.stderr, re.I), r.stderr


# --------------------------------------------------------------- environment.yml
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib", "nbconvert-core": "nbconvert"}


def test_environment_yml_matches_pyproject():
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"][0] == "conda-forge"
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
            continue
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*(?:=+\s*([^\s=]+))?", dep)
        conda[_norm(CONDA_TO_PYPI.get(m.group(1), m.group(1)))] = m.group(2)
    assert pip == ["-e ."]  # labkit itself, from this checkout
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {}
    for d in deps:
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*(?:==\s*([^\s;,]+))?", d)
        wanted[_norm(m.group(1))] = m.group(2)
    missing = set(wanted) - set(conda)
    assert not missing, f"environment.yml lacks runtime dependencies of pyproject.toml: {missing}"
    assert "bcc" in conda and "python" in conda and "pip" in conda
    # same pins, so `pip install -e .` finds everything satisfied and mixes nothing in
    differ = {k: (conda[k], v) for k, v in wanted.items() if v and conda[k] != v}
    assert not differ, f"environment.yml pins differ from pyproject.toml (conda, pyproject): {differ}"
    extra = set(conda) - set(wanted) - {"bcc", "python", "pip"}
    assert not extra, f"environment.yml has packages pyproject.toml does not name: {extra}"


# ----------------------------------------------------------- the Jupyter server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listeners(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on ``port`` (this network namespace)."""
    found = set()
    for fname, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(fname).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            addr, p = parts[1].split(":")
            if parts[3] != "0A" or int(p, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            if v6:
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
            else:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
    return found


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(st).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(st.split("/")[2]))
    return pids


def _get(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class Server:
    """scripts/start-jupyter.sh in its own process group; stop() kills the group."""

    def __init__(self, *args: str, env: dict | None = None, tmp: Path):
        self.port = _free_port()
        self.log = tmp / f"server-{self.port}.log"
        full_env = dict(os.environ, **(env or {}))
        full_env.pop("JUPYTER_TOKEN", None)
        self.proc = subprocess.Popen([str(START), "--port", str(self.port), *args],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     env=full_env, start_new_session=True, cwd=tmp)
        self.pgid = self.proc.pid
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            if _listeners(self.port) and _get(self.base + "/api/status") in (200, 403):
                return
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server did not come up:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()

    def stop(self):
        try:
            os.killpg(self.pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _group_pids(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _group_pids(self.pgid)
        if left:
            os.killpg(self.pgid, signal.SIGKILL)
        assert not left, f"processes left in the server's group: {left}"
        assert not _listeners(self.port), "port still listening after stop"


def _caps_of(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
            out[k] = int(v.strip(), 16)
        elif k == "NoNewPrivs":
            out[k] = int(v.strip())
        elif k == "Uid":
            out[k] = int(v.split()[0])
    return out


@needs_root
def test_server_requires_token_listens_on_loopback_and_stops_clean(tmp_path):
    token = "labkit-test-" + os.urandom(12).hex()
    kernels = tmp_path / "jpath" / "kernels"
    srv = Server("--caps-user", "nobody", tmp=tmp_path,
                 env={"LABKIT_TOKEN": token, "LABKIT_KERNELS_DIR": str(kernels),
                      "JUPYTER_PATH": str(tmp_path / "jpath")})
    kernel_pid = None
    try:
        out = srv.output()
        assert out.count(token) == 1, "the token must be printed exactly once"
        assert f"http://127.0.0.1:{srv.port}/lab?token={token}" in out
        for api in ("/api/kernels", "/api/contents", "/api/terminals"):
            assert _get(srv.base + api) in (401, 403), api
            assert _get(srv.base + api, "wrong-" + token) in (401, 403), api
            assert _get(srv.base + api, token) == 200, api
        assert _get(f"{srv.base}/api/contents?token={token}") == 200
        # DNS rebinding: a foreign Host header is refused even with the token
        req = urllib.request.Request(srv.base + "/api/kernels",
                                     headers={"Authorization": f"token {token}", "Host": f"evil.example:{srv.port}"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 403
        # no open CORS: another origin gets no Access-Control-Allow-Origin for a
        # request that rides on the browser's login cookie, and cannot POST with it.
        # (Jupyter does allow a request that carries the token itself from any
        # origin: whoever has the token is the user anyway.)
        with urllib.request.urlopen(urllib.request.Request(
                srv.base + "/api/kernels", headers={"Authorization": f"token {token}"}), timeout=10) as r:
            cookie = "; ".join(c.split(";", 1)[0] for c in r.headers.get_all("Set-Cookie"))
        assert cookie
        with urllib.request.urlopen(urllib.request.Request(
                srv.base + "/api/kernels", headers={"Cookie": cookie}), timeout=10) as r:
            assert r.status == 200  # the cookie alone is a valid login ...
        evil = {"Cookie": cookie, "Origin": "http://evil.example"}
        for method, data in (("GET", None), ("POST", b"{}")):
            req = urllib.request.Request(srv.base + "/api/kernels", method=method, data=data,
                                         headers=dict(evil, **{"Content-Type": "application/json"}))
            with pytest.raises(urllib.error.HTTPError) as e:  # ... but not from another origin
                urllib.request.urlopen(req, timeout=10)
            assert e.value.code in (403, 404), (method, e.value.code)
            assert "Access-Control-Allow-Origin" not in e.value.headers
            assert "Access-Control-Allow-Credentials" not in e.value.headers
        assert _listeners(srv.port) == {"127.0.0.1"}
        # the token is never on a command line (ps shows those to every user)
        for pid in _group_pids(srv.pgid):
            assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        # the server can start the capability-only kernel: it runs as nobody with
        # exactly the four capabilities, no_new_privs, and without the token
        req = urllib.request.Request(srv.base + "/api/kernels", method="POST",
                                     data=json.dumps({"name": "labkit-caps"}).encode(),
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            kid = json.load(r)["id"]
        # run the tracepoint lesson's core in it, through the browser's path (websocket)
        text, errors = _execute_over_websocket(srv, token, kid, TRACE_CODE + _TOKEN_CHECK)
        assert not errors, errors
        assert f"LABKIT uid={NOBODY} events=7" in text, text
        assert "LABKIT token=False" in text, text
        kernel_pid = _find_kernel(kid)
        caps = _caps_of(kernel_pid)
        assert caps["Uid"] == NOBODY
        assert caps["CapEff"] == caps["CapAmb"] == caps["CapBnd"] == CAPS_MASK, caps
        assert caps["NoNewPrivs"] == 1
        assert b"JUPYTER_TOKEN" not in Path(f"/proc/{kernel_pid}/environ").read_bytes()
    finally:
        srv.stop()
        _cleanup_caps_homes()
    if kernel_pid is not None:
        deadline = time.monotonic() + 10
        while _alive(kernel_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(kernel_pid), "the kernel outlived the server"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


_TOKEN_CHECK = r'''
print("LABKIT token=%s" % any("TOKEN" in k for k in os.environ))
'''


def _execute_over_websocket(srv: Server, token: str, kid: str, code: str) -> tuple[str, list[str]]:
    """Execute ``code`` in kernel ``kid`` the way JupyterLab does: over the
    server's websocket (kernel protocol 5.x, JSON messages)."""
    import asyncio
    import uuid

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    async def run():
        ws = await websocket_connect(HTTPRequest(
            f"ws://127.0.0.1:{srv.port}/api/kernels/{kid}/channels",
            headers={"Authorization": f"token {token}"}))
        msg_id = uuid.uuid4().hex
        await ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                       "session": uuid.uuid4().hex, "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        out, errors = [], []
        while True:
            raw = await asyncio.wait_for(ws.read_message(), timeout=120)
            assert raw is not None, "websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id or msg.get("channel") != "iopub":
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                errors.append(f'{msg["content"]["ename"]}: {msg["content"]["evalue"]}')
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                ws.close()
                return "".join(out), errors

    return asyncio.run(run())


def _find_kernel(kid: str) -> int:
    for cmd in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            argv = Path(cmd).read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ipykernel_launcher" in argv and any(kid.encode() in a for a in argv):
            return int(cmd.split("/")[2])
    raise AssertionError(f"no kernel process for {kid}")


def _cleanup_caps_homes():
    # per-kernel homes of users without one (nobody), made by mktemp in the kernel
    for d in glob.glob("/tmp/labkit-caps-home.*"):
        if os.stat(d).st_uid == NOBODY:
            shutil.rmtree(d, ignore_errors=True)


@needs_root
def test_server_token_file_url_file_and_public_url(tmp_path):
    token_file, url_file = tmp_path / "state" / "token", tmp_path / "run" / "url"
    args = ("--token-file", str(token_file), "--url-file", str(url_file), "--public-url", "http://127.0.0.1:8888")
    env = {"LABKIT_TOKEN": ""}
    srv = Server(*args, env=env, tmp=tmp_path)
    try:
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert url_file.read_text() == f"http://127.0.0.1:8888/lab?token={token}\n"
        assert token_file.stat().st_mode & 0o077 == 0 and url_file.stat().st_mode & 0o077 == 0
        assert token not in srv.output()  # services: the token stays out of the journal
        assert _get(srv.base + "/api/kernels") in (401, 403)
        assert _get(srv.base + "/api/kernels", token) == 200
    finally:
        srv.stop()
    # a restart keeps the token (a bookmarked URL keeps working)
    srv = Server(*args, env=env, tmp=tmp_path)
    try:
        assert _get(srv.base + "/api/kernels", token) == 200
        assert url_file.read_text().endswith(token + "\n")
    finally:
        srv.stop()


@pytest.mark.parametrize("ip", ["0.0.0.0", "::", "*", ""])
def test_server_refuses_every_address(ip, tmp_path):
    r = subprocess.run([str(START), "--port", str(_free_port()), "--ip", ip], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, LABKIT_TOKEN="x" * 32))
    assert r.returncode == 2 and "refusing" in r.stderr, r.stdout + r.stderr


def test_server_refuses_weak_token(tmp_path):
    r = subprocess.run([str(START), "--port", str(_free_port())], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, LABKIT_TOKEN="short"))
    assert r.returncode == 2 and "too short" in r.stderr, r.stdout + r.stderr


# ------------------------------------------------------ capability-only kernel
TRACE_CODE = r'''
import os
from bcc import BPF
me = os.getpid()
b = BPF(text="""
BPF_RINGBUF_OUTPUT(events, 8);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid != %d) return 0;
    u32 *slot = events.ringbuf_reserve(sizeof(u32));
    if (!slot) return 0;
    *slot = pid;
    events.ringbuf_submit(slot, 0);
    return 0;
}
""" % me)
got = []
b["events"].open_ring_buffer(lambda ctx, data, size: got.append(1))
for _ in range(7):
    os.getppid()
b.ring_buffer_poll(timeout=1000)
b.cleanup()
print("LABKIT uid=%d events=%d" % (os.getuid(), len(got)))
'''


@pytest.fixture
def caps_spec(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (the kernel is launched by root, as the server does)")
    if not Path("/sys/kernel/tracing/events/syscalls").is_dir():
        pytest.skip("tracefs is not mounted or has no syscall tracepoints: run ./lab setup")
    kernels = tmp_path / "kernels"
    r = subprocess.run([str(START), "--caps-user", "nobody", "--kernelspec-only"], capture_output=True, text=True,
                       env=dict(os.environ, LABKIT_KERNELS_DIR=str(kernels)), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    spec = json.loads((kernels / "labkit-caps" / "kernel.json").read_text())
    yield kernels, spec
    _cleanup_caps_homes()


@pytest.mark.kernel
def test_caps_kernel_loads_a_tracepoint_program_as_nobody(caps_spec):
    """Through the real launch path (jupyter_client, connection file in root's
    runtime dir), the labkit-caps kernel runs as uid 65534 with only the four
    capabilities and still loads, attaches and reads a tracepoint program."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernels, spec = caps_spec
    assert spec["argv"][0].endswith("setpriv") and "--no-new-privs" in spec["argv"]
    km = KernelManager(kernel_name="labkit-caps", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    km.start_kernel(cwd=str(ROOT), env=dict(os.environ, JUPYTER_TOKEN="must-not-leak"))
    kc = km.client()
    kc.start_channels()
    out, errors = [], []
    try:
        kc.wait_for_ready(timeout=60)
        code = TRACE_CODE + r'''
print("LABKIT token=%s" % ("JUPYTER_TOKEN" in os.environ))
st = {k: v.strip() for k, v in (l.split(":", 1) for l in open("/proc/self/status"))}
print("LABKIT capeff=%s nnp=%s" % (st["CapEff"], st["NoNewPrivs"]))
try:
    open("/etc/labkit-caps-write-test", "w")
    print("LABKIT write=allowed")
except PermissionError:
    print("LABKIT write=refused")
'''
        msg_id = kc.execute(code)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            msg = kc.get_iopub_msg(timeout=120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append(f'{msg["content"]["ename"]}: {msg["content"]["evalue"]}')
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        Path("/etc/labkit-caps-write-test").unlink(missing_ok=True)
    text = "".join(out)
    assert not errors, errors
    assert f"LABKIT uid={NOBODY} events=7" in text, text
    assert "LABKIT token=False" in text
    assert f"LABKIT capeff={CAPS_MASK:016x} nnp=1" in text, text
    assert "LABKIT write=refused" in text  # not root: no writing over the system


@pytest.mark.kernel
def test_same_uid_without_the_caps_is_refused(caps_spec):
    """The control: the same launch, uid and program with the capabilities
    removed cannot load the program (and with them it can)."""
    _, spec = caps_spec
    argv = spec["argv"]
    py = argv.index("-Xfrozen_modules=off") - 1
    prefix = argv[:py + 1]

    def run(argv_prefix):
        return subprocess.run([*argv_prefix, "-c", TRACE_CODE], capture_output=True, text=True, timeout=120, cwd="/")

    without = [a.split("=")[0] + "=-all" if a.startswith(("--inh-caps=", "--ambient-caps=")) else a for a in prefix]
    assert without != prefix
    r = run(without)
    assert r.returncode != 0, r.stdout
    assert "LABKIT uid" not in r.stdout
    assert re.search(r"Failed to (compile|load|attach)|Operation not permitted|Permission denied|super-user", r.stderr), r.stderr
    r = run(prefix)
    assert r.returncode == 0 and f"LABKIT uid={NOBODY} events=7" in r.stdout, r.stdout + r.stderr
