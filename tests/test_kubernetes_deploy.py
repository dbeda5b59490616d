"""deploy/kubernetes: the class server on a cluster, checked offline.

Nothing here talks to a cluster or runs helm (neither exists on the project's
machines). What is checked is what can be without them (tests/fixtures/z2jh.py
does each step as the chart would):

* the values, merged with Zero to JupyterHub 4.4.0's defaults as Helm merges
  them, pass the chart's own values schema, and bad values do not;
* KubeSpawner 7.0.0 (the chart's) renders the student's pod and disk from the
  config the chart's hub would make of the values; those, the student
  NetworkPolicy the chart renders, the RuntimeClass and the namespace pass
  Kubernetes' own schemas (kubernetes-validate, strict: no unknown field) for
  the oldest Kubernetes the chart supports and the newest known here;
* the settings that matter are the one-host hub's (scripts/hub.sh's defaults,
  scripts/jupyterhub_config.py, labkit/hub/limits.py), read from those files;
* root only inside a Kata VM of its own, and a network that reaches the hub;
* the container image is made from the VM image's package list.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate  # the k8s extra of pyproject.toml, which scripts/setup.sh installs
import pytest
import yaml
from jupyterhub.app import JupyterHub
from traitlets.config import Config

from fixtures import z2jh
from labkit.hub.limits import Limits

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
# the oldest Kubernetes the chart supports (Chart.yaml: kubeVersion ">=1.28.0-0") and the newest
# kubernetes-validate 1.37.0 has schemas for
K8S_VERSIONS = ("1.28.0", "1.37.0")
MI = 1024 * 1024


def _user_values() -> dict:
    return yaml.safe_load((DEPLOY / "values.yaml").read_text())


def _yaml_docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _render(values: dict, tmp_path: Path, name: str = "alice") -> dict:
    return asyncio.run(z2jh.render_user(z2jh.hub_config(values), name, tmp_path))


@pytest.fixture(scope="module")
def values() -> dict:
    return z2jh.chart_values(_user_values())


@pytest.fixture(scope="module")
def rendered(values, tmp_path_factory) -> dict:
    return _render(values, tmp_path_factory.mktemp("kube"))


# ------------------------------------------------------------- one host
def _hub_sh_defaults() -> dict[str, int]:
    """The numbers ./lab hub uses when none is given (scripts/hub.sh's NAME=value lines)."""
    text = (ROOT / "scripts" / "hub.sh").read_text()
    out = {}
    for name in ("MEM", "CPUS", "HOME_MB", "IDLE"):
        m = re.search(rf"^{name}=(\d+)$", text, re.M)
        assert m, f"scripts/hub.sh has no default {name}=N line any more: update this test"
        out[name] = int(m.group(1))
    return out


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """scripts/jupyterhub_config.py as ./lab hub runs it with its defaults: the one-host hub's config."""
    d = _hub_sh_defaults()
    state = tmp_path_factory.mktemp("hub-state")
    env = {"LABKIT_HUB_STATE": str(state), "LABKIT_HUB_IMAGE": str(state / "image"),
           "LABKIT_HUB_PROXY": "configurable-http-proxy", "LABKIT_HUB_MEM": str(d["MEM"]),
           "LABKIT_HUB_CPUS": str(d["CPUS"]), "LABKIT_HUB_HOME_MB": str(d["HOME_MB"]),
           "LABKIT_HUB_IDLE_TIMEOUT": str(d["IDLE"])}
    c = Config()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        path = ROOT / "scripts" / "jupyterhub_config.py"
        exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: c})  # noqa: S102
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return c


def _quantity_bytes(q) -> int:
    """A Kubernetes memory quantity (2147483648, "2Gi", "512Mi") in bytes."""
    if isinstance(q, (int, float)):
        return int(q)
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", str(q))
    assert m, f"quantity {q!r} is not one this test reads"
    return int(m.group(1)) * {None: 1, "Ki": 1024, "Mi": MI, "Gi": 1024 * MI, "Ti": 1024 ** 2 * MI}[m.group(2)]


def _cpu(q) -> float:
    s = str(q)
    return float(s[:-1]) / 1000 if s.endswith("m") else float(s)


# --------------------------------------------------------------- schema
def test_the_values_pass_the_charts_own_schema(values):
    assert z2jh.schema_errors(values) == []


@pytest.mark.parametrize("path, bad, words", [
    (("singleuser", "memroy"), {"limit": "2G"}, "Additional properties are not allowed ('memroy'"),
    (("cull", "timeout"), "one hour", "'one hour' is not of type"),
    (("singleuser", "storage", "type"), "lvm", "'lvm' is not one of"),
    (("singleuser", "networkPolicy", "egressAllowRules", "everything"), True, "Additional properties"),
    (("singleuser", "uid"), "root", "'root' is not of type"),
])
def test_the_schema_check_rejects_a_bad_value(path, bad, words):
    user = _user_values()
    node = user
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = bad
    errors = z2jh.schema_errors(z2jh.chart_values(user))
    assert any(words in e for e in errors), errors


def test_helms_merge_keeps_the_defaults_and_lets_null_delete_one(values):
    # a default the values do not name stays (hub.baseUrl), a list replaces (extraVolumes), null deletes (fsGid: 100)
    assert values["hub"]["baseUrl"] == "/"
    assert values["singleuser"]["storage"]["extraVolumes"] == []
    assert "fsGid" not in values["singleuser"]
    assert values["singleuser"]["extraLabels"]["hub.jupyter.org/network-access-hub"] == "true"


# ----------------------------------------------------- Kubernetes schemas
def _objects(values, rendered) -> list[dict]:
    return [rendered["pod"], rendered["pvc"], z2jh.singleuser_netpol(values),
            *_yaml_docs("runtimeclass.yaml"), *_yaml_docs("namespace.yaml")]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_passes_kubernetes_own_schema(values, rendered, version):
    kinds = []
    for obj in _objects(values, rendered):
        kubernetes_validate.validate(obj, version, strict=True)
        kinds.append(obj["kind"])
    assert sorted(kinds) == ["Namespace", "NetworkPolicy", "PersistentVolumeClaim", "Pod", "RuntimeClass"]


@pytest.mark.parametrize("break_it, words", [
    (lambda pod: pod["spec"].update(runtimeClasName="labkit-kata"), "runtimeClasName"),
    (lambda pod: pod["spec"].update(hostNetwork="no"), "'no' is not of type"),
    (lambda pod: pod["spec"]["containers"][0]["securityContext"].update(privileged="yes"), "'yes' is not of type"),
])
def test_kubernetes_schema_check_rejects_a_broken_pod(rendered, break_it, words):
    pod = copy.deepcopy(rendered["pod"])
    break_it(pod)
    with pytest.raises(kubernetes_validate.ValidationError) as e:
        kubernetes_validate.validate(pod, K8S_VERSIONS[-1], strict=True)
    assert words in str(e.value.message)


def _api_rules(pod: dict) -> list[str]:
    """The rules of the API server's pod validation that no schema holds, for what this deployment sets."""
    broken = []
    names = {v["name"] for v in pod["spec"].get("volumes", [])}
    for ctr in pod["spec"]["containers"]:
        sc = ctr.get("securityContext") or {}
        if sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False:
            broken.append(f"{ctr['name']}: cannot set allowPrivilegeEscalation to false and privileged to true")
        res = ctr.get("resources") or {}
        for kind, req in (res.get("requests") or {}).items():
            lim = (res.get("limits") or {}).get(kind)
            if lim is not None:
                low, high = (_quantity_bytes(req), _quantity_bytes(lim)) if kind == "memory" else (_cpu(req), _cpu(lim))
                if low > high:
                    broken.append(f"{ctr['name']}: {kind} request {req} above its limit {lim}")
        for m in ctr.get("volumeMounts") or []:
            if m["name"] not in names:
                broken.append(f"{ctr['name']}: volume mount {m['name']!r} names no volume")
    return broken


def test_the_pod_keeps_the_api_servers_rules(rendered):
    assert _api_rules(rendered["pod"]) == []


def test_privileged_without_escalation_is_caught(values, tmp_path):
    # KubeSpawner's default (and the chart's) is allowPrivilegeEscalation false: with privileged, the API refuses it
    bad = copy.deepcopy(values)
    bad["singleuser"]["allowPrivilegeEscalation"] = False
    assert z2jh.schema_errors(bad) == []                      # the chart's schema lets it through ...
    kubernetes_validate.validate(_render(bad, tmp_path)["pod"], K8S_VERSIONS[-1], strict=True)   # ... and so do these
    assert _api_rules(_render(bad, tmp_path)["pod"]) == [
        "notebook: cannot set allowPrivilegeEscalation to false and privileged to true"]


# ------------------------------------------------ the one host's settings
def test_memory_and_cpu_are_the_one_hosts_and_guaranteed(rendered, host):
    res = rendered["pod"]["spec"]["containers"][0]["resources"]
    mem_mb, cpus = host.LabVMSpawner.vm_mem_mb, host.LabVMSpawner.vm_cpus
    assert (mem_mb, cpus) == (_hub_sh_defaults()["MEM"], _hub_sh_defaults()["CPUS"])
    assert _quantity_bytes(res["limits"]["memory"]) == mem_mb * MI
    assert _cpu(res["limits"]["cpu"]) == cpus == host.LabVMSpawner.vm_cpu_quota
    # Guaranteed QoS: what is asked for is what is capped, as a VM's -m and its cgroup
    assert res["requests"] == res["limits"]


def test_the_vm_overhead_is_the_one_hosts(rendered, host):
    # one host: the VM's cgroup holds the guest's RAM and qemu's own overhead (labkit/hub/limits.py);
    # a cluster: the pod's limit and the RuntimeClass's overhead, which the node's pod cgroup holds
    (rc,) = _yaml_docs("runtimeclass.yaml")
    pod_mem = _quantity_bytes(rendered["pod"]["spec"]["containers"][0]["resources"]["limits"]["memory"])
    overhead = _quantity_bytes(rc["overhead"]["podFixed"]["memory"])
    assert pod_mem + overhead == Limits(host.LabVMSpawner.vm_mem_mb, host.LabVMSpawner.vm_cpu_quota).mem_bytes


def test_each_student_has_a_disk_of_the_one_hosts_size_mounted_as_home(rendered, host):
    pvc, pod = rendered["pvc"], rendered["pod"]
    assert _quantity_bytes(pvc["spec"]["resources"]["requests"]["storage"]) == host.LabVMSpawner.home_size_mb * MI
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    (vol,) = pod["spec"]["volumes"]
    assert vol["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"] == "claim-alice"
    (mount,) = pod["spec"]["containers"][0]["volumeMounts"]
    assert (mount["name"], mount["mountPath"]) == (vol["name"], "/home/student")
    assert "subPath" not in mount                          # the whole volume is the student's


def test_idle_servers_end_as_on_one_host(host, values):
    c = z2jh.hub_config(values)
    (culler,) = c.JupyterHub.services
    (host_culler,) = host.JupyterHub.services
    flags = lambda cmd: {a.split("=")[0]: a.split("=", 1)[1] for a in cmd if a.startswith("--") and "=" in a}  # noqa: E731
    mine, theirs = flags(culler["command"]), flags(host_culler["command"])
    assert mine["--timeout"] == theirs["--timeout"] == str(_hub_sh_defaults()["IDLE"])
    assert mine["--cull-every"] == theirs["--cull-every"]
    assert "--cull-admin-users=false" not in culler["command"]           # the one host culls admins too
    (role,) = c.JupyterHub.load_roles
    (host_role,) = host.JupyterHub.load_roles
    assert sorted(role["scopes"]) == sorted(host_role["scopes"])        # no more rights than on one host


def test_students_log_in_as_on_one_host(host, values):
    c = z2jh.hub_config(values)
    assert c.JupyterHub.authenticator_class == host.JupyterHub.authenticator_class == "native"
    assert dict(c.NativeAuthenticator) == dict(host.NativeAuthenticator)
    assert c.Authenticator.allow_all is host.Authenticator.allow_all is True
    assert c.Authenticator.admin_users, "no admin: nobody could approve a sign-up"
    # what an admin may do: the same (the chart's default lets admins into students' servers)
    assert c.JupyterHub.admin_access == host.JupyterHub.get("admin_access", JupyterHub.admin_access.default_value)
    (templates,) = c.JupyterHub.template_paths
    assert (Path(templates) / "signup.html").is_file()          # the extraConfig finds NativeAuthenticator's pages
    assert c.Spawner.default_url == host.Spawner.default_url == "/lab"
    assert c.KubeSpawner.start_timeout == host.Spawner.start_timeout
    assert c.JupyterHub.cleanup_servers is host.JupyterHub.cleanup_servers is False


# ------------------------------------------------------- isolation
def test_root_only_inside_a_kata_vm_of_its_own(rendered):
    pod = rendered["pod"]
    spec = pod["spec"]
    (ctr,) = spec["containers"]
    assert ctr["securityContext"]["privileged"] is True and ctr["securityContext"]["runAsUser"] == 0
    (rc,) = _yaml_docs("runtimeclass.yaml")
    assert spec["runtimeClassName"] == rc["metadata"]["name"]
    kata = yaml.safe_load((DEPLOY / "kata" / "kata-deploy-values.yaml").read_text())["customRuntimes"]
    assert kata["enabled"] and rc["handler"] == "kata-" + next(iter(kata["runtimes"]))
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert spec.get(key) in (None, False), key
    assert not any("hostPath" in v for v in spec.get("volumes", []))
    assert not any("hostPort" in p for p in ctr.get("ports", []))
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    assert spec["enableServiceLinks"] is False
    assert not spec.get("initContainers") and len(spec["containers"]) == 1


def test_two_students_two_pods_two_vms_two_disks(values, rendered, tmp_path):
    bob = _render(values, tmp_path, "bob")
    pods = [rendered["pod"], bob["pod"]]
    assert len({p["metadata"]["name"] for p in pods}) == 2
    assert {p["spec"]["runtimeClassName"] for p in pods} == {"labkit-kata"}     # Kata: one VM per pod
    claims = {p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] for p in pods}
    assert claims == {rendered["pvc"]["metadata"]["name"], bob["pvc"]["metadata"]["name"]} and len(claims) == 2


def _peers_beyond_the_hub(netpol: dict) -> list:
    """Egress destinations of a student's pod other than the hub's API, the proxy's public port
    (what every browser reaches) and DNS in kube-system."""
    allowed = [
        ({"podSelector": {"matchLabels": {"component": "hub", "app": "jupyterhub", "release": z2jh.RELEASE}}},
         [{"port": 8081}]),
        ({"podSelector": {"matchLabels": {"component": "proxy", "app": "jupyterhub", "release": z2jh.RELEASE}}},
         [{"port": 8000}]),
        ({"podSelector": {"matchLabels": {"component": "autohttps", "app": "jupyterhub", "release": z2jh.RELEASE}}},
         [{"port": 8080}, {"port": 8443}]),
        ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}},
         [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]),
    ]
    beyond = []
    for rule in netpol["spec"]["egress"]:
        ports = rule.get("ports")           # none: every port
        for peer in rule.get("to") or [{"everywhere": True}]:      # no "to": every destination
            if not ports or (peer, ports) not in allowed:
                beyond.append(peer)
    return beyond


def test_a_students_pod_reaches_the_hub_and_nothing_else(values, rendered):
    netpol = z2jh.singleuser_netpol(values)
    labels = rendered["pod"]["metadata"]["labels"]
    # the policy selects the student's pod ...
    assert all(labels.get(k) == v for k, v in netpol["spec"]["podSelector"]["matchLabels"].items())
    assert netpol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # ... lets it out to the hub's API (and the proxy, DNS) only ...
    assert _peers_beyond_the_hub(netpol) == []
    # ... and in only from the pods the chart labels for it (the proxy, the hub), which students' pods are not
    (ingress,) = netpol["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "notebook-port"}]
    assert ingress["from"] == [{"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-singleuser": "true"}}}]
    assert "hub.jupyter.org/network-access-singleuser" not in labels
    assert labels["hub.jupyter.org/network-access-hub"] == "true"     # the hub's own policy lets it in


def test_the_charts_default_network_is_caught_as_too_open(values):
    # the chart's defaults let a student's pod reach the internet and DNS anywhere: the check above must say so
    open_values = copy.deepcopy(values)
    defaults = z2jh.chart_values({})["singleuser"]["networkPolicy"]["egressAllowRules"]
    open_values["singleuser"]["networkPolicy"]["egressAllowRules"] = defaults
    beyond = _peers_beyond_the_hub(z2jh.singleuser_netpol(open_values))
    cidrs = {p.get("ipBlock", {}).get("cidr") for p in beyond}
    assert "0.0.0.0/0" in cidrs and "169.254.169.254/32" in cidrs


# --------------------------------------------------------- the image
def _guest_pkgs() -> list[str]:
    text = (ROOT / "tests" / "stock_kernel" / "build-image.sh").read_text()
    m = re.search(r"^GUEST_PKGS=\((.*?)\)\s*$", text, re.M | re.S)
    assert m, "build-image.sh has no GUEST_PKGS=( ... ) list"
    return m.group(1).split()


def test_the_image_installs_the_vm_images_package_list():
    script = DEPLOY / "image" / "guest-packages.sh"
    r = subprocess.run([str(script), str(ROOT / "tests" / "stock_kernel" / "build-image.sh"), "amd64"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.split() == _guest_pkgs() + ["linux-headers-amd64"]
    assert "python3-bpfcc" in r.stdout.split()
    dockerfile = (DEPLOY / "image" / "Dockerfile").read_text()
    assert "COPY tests/stock_kernel/build-image.sh deploy/kubernetes/image/guest-packages.sh /tmp/recipe/" in dockerfile
    assert "$(/tmp/recipe/guest-packages.sh /tmp/recipe/build-image.sh" in dockerfile
    # the same Python packages: the same extras of pyproject.toml as the VM image
    extras = lambda text: re.findall(r'-e "/opt/labkit\[([a-z,]+)\]"', text)  # noqa: E731
    assert extras(dockerfile) == extras((ROOT / "tests" / "stock_kernel" / "build-image.sh").read_text()) != []


def test_the_package_list_reader_refuses_a_file_without_one(tmp_path):
    empty = tmp_path / "build-image.sh"
    empty.write_text("#!/bin/bash\necho no list here\n")
    r = subprocess.run([str(DEPLOY / "image" / "guest-packages.sh"), str(empty)], capture_output=True, text=True)
    assert r.returncode == 1 and "no GUEST_PKGS=( ... ) list" in r.stderr


def test_the_pods_command_is_in_the_image_and_reads_its_port(values, rendered):
    (cmd,) = values["singleuser"]["cmd"]
    assert cmd.startswith("/opt/labkit/")
    script = ROOT / cmd.removeprefix("/opt/labkit/")
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    dockerfile = (DEPLOY / "image" / "Dockerfile").read_text()
    assert f'CMD ["{cmd}"]' in dockerfile and "COPY . /opt/labkit" in dockerfile
    (ctr,) = rendered["pod"]["spec"]["containers"]
    # KubeSpawner gives the command as the container's args: the image's ENTRYPOINT (tini, PID 1) runs it
    assert ctr["args"] == [cmd] and "command" not in ctr
    assert 'ENTRYPOINT ["/usr/bin/tini", "-g", "--"]' in dockerfile
    # start-pod.sh takes the port from JUPYTERHUB_SERVICE_URL: it is the port KubeSpawner connects to
    url = next(e["value"] for e in ctr["env"] if e["name"] == "JUPYTERHUB_SERVICE_URL")
    assert re.match(r"http://[^/]+:(\d+)/", url).group(1) == str(ctr["ports"][0]["containerPort"])


@pytest.mark.parametrize("args, env, words", [
    ([], {}, "no JUPYTERHUB_API_TOKEN"),
    (["--port", "1"], {"JUPYTERHUB_API_TOKEN": "x"}, "no arguments expected"),
    ([], {"JUPYTERHUB_API_TOKEN": "x"}, "/home/student is not the student's volume"),
])
def test_the_pods_command_refuses_to_run_outside_a_students_pod(args, env, words):
    # it stops before touching anything (mounts, headers) when it is not in a student's pod
    if os.path.ismount("/home/student"):
        pytest.skip("/home/student is a mount point here: the script would go on")
    clean = {"PATH": "/usr/bin:/bin"} | env
    r = subprocess.run([str(DEPLOY / "image" / "start-pod.sh"), *args], capture_output=True, text=True, env=clean)
    assert r.returncode == 1 and words in r.stderr, r.stderr


def test_the_kata_runtime_boots_the_kernel_with_bpf_and_sizes_the_vm():
    kata = yaml.safe_load((DEPLOY / "kata" / "kata-deploy-values.yaml").read_text())["customRuntimes"]
    (runtime,) = kata["runtimes"].values()
    assert runtime["baseConfig"] == "qemu" and runtime["inheritBaseOverhead"] is False
    qemu = tomllib.loads(runtime["dropIn"])["hypervisor"]["qemu"]
    assert qemu["kernel"].endswith("/vmlinux-debug.container")      # Kata's kernel with BTF and kprobes
    assert qemu["default_vcpus"] == 1
    (rc,) = _yaml_docs("runtimeclass.yaml")
    # the guest's base memory (its kernel and Kata's agent) fits in the overhead the scheduler counts
    assert qemu["default_memory"] * MI < _quantity_bytes(rc["overhead"]["podFixed"]["memory"])
    lines = [ln for ln in (DEPLOY / "kata" / "labkit-kernel.conf").read_text().splitlines()
             if ln and not ln.startswith("#")]
    options = [ln.split("=")[0] for ln in lines]
    assert all(re.fullmatch(r"CONFIG_[A-Z0-9_]+=y", ln) for ln in lines) and len(set(options)) == len(options)
    assert {"CONFIG_NET_SCH_INGRESS", "CONFIG_NET_CLS_BPF", "CONFIG_BPF_LSM"} <= set(options)
