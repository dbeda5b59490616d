"""lima/labkit.yaml, the students' VM on a Mac (Lima): what can be checked without a hypervisor.

The template is parsed as YAML; its scripts are rendered with the Go-template variables
Lima fills in ({{.Home}}, {{.User}}, {{.Param.X}}, {{.Name}}) and checked by `bash -n`;
the port forwards are replayed through Lima's first-match rule (see
lima-vm/lima pkg/hostagent/port.go) for the ports a lab VM listens on.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "lima" / "labkit.yaml"
SETUP = ROOT / "scripts" / "setup.sh"
SERVICE = ROOT / "scripts" / "install-service.sh"
GUEST_PORT = 8888

# what Lima fills in (a user "student" on a Mac; Lima 2.0's guest home)
GUEST_VARS = {"Home": "/home/student.linux", "User": "student", "UID": "501", "Name": "labkit"}
PACKAGE_INSTALL = re.compile(r"\b(apt-get|apt|dpkg|pip3?|yum|dnf|snap)\b\s+(-\S+\s+)*install\b|\bdpkg\s+-i\b")


@pytest.fixture(scope="module")
def tmpl() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())


def render(text: str, tmpl: dict) -> str:
    """``text`` with Lima's template variables filled in; an unknown one fails the test."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name.startswith("Param."):
            key = name.removeprefix("Param.")
            assert key in tmpl.get("param", {}), f"{{{{.{name}}}}} is not declared under param:"
            return str(tmpl["param"][key])
        assert name in GUEST_VARS, f"unknown template variable {{{{.{name}}}}}"
        return GUEST_VARS[name]
    out = re.sub(r"\{\{\s*\.([A-Za-z][\w.]*)\s*\}\}", one, text)
    assert "{{" not in out and "}}" not in out, out
    return out


def system_scripts(tmpl: dict) -> list[str]:
    scripts = [p["script"] for p in tmpl.get("provision", []) if p.get("mode", "system") == "system"]
    assert scripts, "no system provisioning script"
    return scripts


def guest_dir(tmpl: dict) -> str:
    """The repository's path in the VM: the one mount's mountPoint, rendered."""
    (mount,) = tmpl["mounts"]
    return render(mount["mountPoint"], tmpl)


# ---------------------------------------------------------------------- images
def test_images_are_debian_12_for_arm64_and_x86_64(tmpl):
    by_arch = {}
    for image in tmpl["images"]:
        by_arch.setdefault(image["arch"], []).append(image["location"])
    assert set(by_arch) == {"aarch64", "x86_64"}, by_arch
    debian_arch = {"aarch64": "arm64", "x86_64": "amd64"}
    for arch, urls in by_arch.items():
        for url in urls:
            m = re.fullmatch(r"https://cloud\.debian\.org/images/cloud/bookworm/[^/]+/"
                             r"debian-12-genericcloud-([a-z0-9]+)(-[0-9-]+)?\.qcow2", url)
            assert m, f"not a Debian 12 (bookworm) genericcloud image: {url}"
            assert m.group(1) == debian_arch[arch], f"{url} is listed for {arch}"
        assert any("/bookworm/latest/" in u for u in urls), f"no 'latest' image for {arch}: {urls}"
    # Debian's cloud kernel has no 9p: Lima must not pick it (QEMU falls back to reverse-sshfs)
    assert "9p" in tmpl.get("mountTypesUnsupported", [])


# ------------------------------------------------------------------- provision
def test_provisioning_is_setup_sh_then_the_shared_service_script(tmpl):
    """The same scripts/setup.sh as ./lab and the Vagrantfile, then scripts/install-service.sh
    (the Vagrantfile's labkit-service runs it too), from the mounted checkout."""
    (script,) = system_scripts(tmpl)
    text = render(script, tmpl)
    gdir = guest_dir(tmpl)
    assert re.search(rf'^dir="{re.escape(gdir)}"$', text, re.M), text
    lines = [ln.strip() for ln in text.splitlines()]
    setup = [i for i, ln in enumerate(lines) if re.fullmatch(r'(exec )?bash "\$dir/scripts/setup\.sh"', ln)]
    service = [i for i, ln in enumerate(lines) if ln.startswith('exec bash "$dir/scripts/install-service.sh" ')]
    assert len(setup) == 1 and len(service) == 1 and setup[0] < service[0], lines
    # its arguments: JupyterLab on the VM's loopback, the forwarded host port, the checkout,
    # the guest port, the Lima user for the capability-only kernel
    args = re.findall(r'"[^"]*"|\S+', lines[service[0]].removeprefix('exec bash "$dir/scripts/install-service.sh" '))
    args = [a.strip('"') for a in args]
    assert args[:5] == ["127.0.0.1", tmpl["param"]["HostPort"], "$dir", str(GUEST_PORT), GUEST_VARS["User"]], args
    assert "{{.User}}" in script  # the Lima user, whatever it is called
    assert "labkit-url" in args[5], args
    # a checkout missing at the mount point fails loudly, saying what to do
    assert "exit 1" in text and ".param.LabkitDir" in text and "not a labkit checkout" in text
    assert SETUP.is_file() and SERVICE.is_file()
    # at every boot both this provisioning and labkit.service (./lab start) run setup.sh: it
    # takes a lock, so two apt or pip runs never overlap
    assert re.search(r"^\s*flock 9$", SETUP.read_text(), re.M)


def test_nothing_is_installed_by_the_template(tmpl):
    for script in system_scripts(tmpl) + [p.get("script", "") for p in tmpl.get("provision", [])]:
        assert not PACKAGE_INSTALL.search(script), script
    assert not PACKAGE_INSTALL.search(TEMPLATE.read_text())
    assert not PACKAGE_INSTALL.search(SERVICE.read_text())
    # no cloud-init packages, no upgrades, no containerd (Lima's default installs one for the user)
    assert not tmpl.get("upgradePackages") and "packages" not in tmpl
    assert tmpl["containerd"] == {"system": False, "user": False}, tmpl.get("containerd")
    assert not [p for p in tmpl.get("provision", []) if p.get("mode") in ("dependency", "ansible")]


def test_the_service_script_exists_and_is_executable():
    assert SERVICE.is_file() and os.access(SERVICE, os.X_OK), SERVICE
    assert SETUP.is_file() and os.access(SETUP, os.X_OK), SETUP
    text = SERVICE.read_text()
    assert text.startswith("#!/bin/bash\n")
    # the caps kernel's user is a parameter (vagrant / the Lima user), not written in
    assert "--caps-user $caps_user" in text and "--caps-user vagrant" not in text
    r = subprocess.run(["bash", "-n", str(SERVICE)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_every_script_in_the_template_passes_bash_n(tmpl, tmp_path):
    scripts = [("provision", p["script"]) for p in tmpl.get("provision", []) if "script" in p]
    scripts += [("probe", p["script"]) for p in tmpl.get("probes", [])]
    assert len(scripts) >= 2, scripts
    for i, (kind, script) in enumerate(scripts):
        text = render(script, tmpl)
        assert text.startswith("#!/bin/bash\n"), f"{kind} script must start with #!/bin/bash"
        f = tmp_path / f"{kind}{i}.sh"
        f.write_text(text)
        r = subprocess.run(["bash", "-n", str(f)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"{kind} script: {r.stderr}"


def test_readiness_probe_waits_for_the_url_and_the_message_says_how_to_get_it(tmpl):
    (probe,) = tmpl["probes"]
    assert probe.get("mode", "readiness") == "readiness"
    assert "/run/labkit/url" in probe["script"] and "labkit" in probe["hint"]
    message = tmpl["message"]
    assert "sudo labkit-url" in message and "127.0.0.1" in message


# -------------------------------------------------------------------- mounts
def test_the_repository_mount_is_writable_and_where_the_provisioning_looks(tmpl):
    (mount,) = tmpl["mounts"]  # the checkout only, never the whole home
    assert mount["writable"] is True
    assert mount["location"] == "{{.Param.LabkitDir}}"
    assert tmpl["param"]["LabkitDir"] == "~/labkit"
    gdir = guest_dir(tmpl)
    assert gdir == GUEST_VARS["Home"] + "/labkit"
    (script,) = system_scripts(tmpl)
    assert f'dir="{gdir}"' in render(script, tmpl)


# -------------------------------------------------------------- port forwards
def _forward(rules: list[dict], guest_ip: str, port: int, proto: str = "tcp") -> str | None:
    """Where Lima forwards a guest socket listening on guest_ip:port: "host_ip:host_port", or
    None (ignored). Lima's rules, first match wins (templates/default.yaml, pkg/hostagent/port.go)."""
    gip = ipaddress.ip_address(guest_ip)
    for r in rules:
        if r.get("proto", "any") not in (proto, "any"):
            continue
        lo, hi = r.get("guestPortRange") or [r.get("guestPort", 1), r.get("guestPort", 65535)]
        if not lo <= port <= hi:
            continue
        rule_ip = ipaddress.ip_address(r.get("guestIP", "127.0.0.1"))
        must_be_zero = r.get("guestIPMustBeZero", rule_ip.is_unspecified)
        if must_be_zero and not gip.is_unspecified:
            continue
        if not (gip.is_unspecified or gip == rule_ip or (rule_ip.is_unspecified and not must_be_zero)
                or (gip == ipaddress.ip_address("::1") and rule_ip == ipaddress.ip_address("127.0.0.1"))):
            continue
        if r.get("ignore"):
            return None
        host_lo = (r.get("hostPortRange") or [r.get("hostPort", lo)])[0]
        return f'{r.get("hostIP", "127.0.0.1")}:{port + host_lo - lo}'
    # Lima's own fallback rule, appended after the template's: loopback to loopback
    return f"127.0.0.1:{port}" if gip.is_loopback or gip.is_unspecified else None


def test_port_forwards_are_loopback_only_jupyterlab_only(tmpl):
    rules = tmpl["portForwards"]
    for r in rules:
        assert r.get("ignore") or r.get("hostIP") == "127.0.0.1", f"forwards to the host's {r.get('hostIP')}: {r}"
        assert "hostSocket" not in r and "guestSocket" not in r and not r.get("reverse"), r
    host_port = int(tmpl["param"]["HostPort"])
    jupyter = [r for r in rules if not r.get("ignore")]
    assert len(jupyter) == 1 and jupyter[0]["guestPort"] == GUEST_PORT and jupyter[0]["hostPort"] == host_port
    # the last rule ignores every other port, tcp and udp, on every guest address
    last = rules[-1]
    assert last.get("ignore") is True and last.get("proto") == "any", last
    assert last.get("guestIP") == "0.0.0.0" and last.get("guestIPMustBeZero") is False, last
    assert last.get("guestPortRange", [1, 65535]) == [1, 65535], last
    # replayed: JupyterLab (on the VM's loopback) reaches the host's loopback; nothing else anywhere
    assert _forward(rules, "127.0.0.1", GUEST_PORT) == f"127.0.0.1:{host_port}"
    for ip, port, proto in [("127.0.0.1", 41235, "tcp"),   # a kernel's ZeroMQ port
                            ("0.0.0.0", 8000, "tcp"), ("::", 9090, "tcp"), ("::1", 8889, "tcp"),
                            ("192.168.5.15", 8888, "tcp"), ("0.0.0.0", 8888, "udp"),
                            ("127.0.0.1", 53, "udp"), ("198.18.0.1", 80, "tcp")]:
        assert _forward(rules, ip, port, proto) is None, (ip, port, proto)
    # and the replay itself can tell: without the ignore rule Lima's fallback would forward them
    assert _forward(rules[:-1], "127.0.0.1", 41235) == "127.0.0.1:41235"


def test_readme_gives_the_commands_of_the_template():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The students' VM on a Mac (Lima)", 1)
    assert len(section) == 2, "README.md has no section \"The students' VM on a Mac (Lima)\""
    text = section[1].split("\n## ", 1)[0]
    assert "brew install lima" in text and "lima/labkit.yaml" in text and "limactl start" in text
    assert "sudo labkit-url" in text and "127.0.0.1" in text
