"""``labkit hub stop``: real processes standing in for the hub, the proxy and two
students' VMs (their command lines carry what the real ones carry), real
cgroups; what is this server's is stopped, what is not is left alone."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from labkit.commands.cli import main as cli_main
from labkit.hub import limits, vm
from labkit.hub.stop import leftovers, stop

pytestmark = pytest.mark.requires("root")

# a guest that powers off when the hub asks (its spawn share's stop file), and one that hangs
_GUEST = "import os, sys, time\nwhile not (sys.argv[1] == 'obeys' and os.path.exists(sys.argv[2])): time.sleep(0.1)\n"


def _proc(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", *argv], start_new_session=True)


@pytest.fixture
def server(tmp_path):
    state = tmp_path / "state"
    tag = uuid.uuid4().hex[:6]
    names = [f"lk-stop-a-{tag}", f"lk-stop-b-{tag}"]
    procs = {}
    for name, mode in zip(names, ("obeys", "hangs")):
        d = state / "users" / name
        (d / "spawn").mkdir(parents=True)
        (d / "spawn" / "env").write_text("export JUPYTERHUB_API_TOKEN=secret\n")
        procs[name] = _proc(_GUEST, mode, str(d / "spawn" / "stop"), "-name", vm.vm_marker(name),
                            "-drive", f"file={d / 'home.img'},format=raw,if=virtio")
        limits.apply(name, procs[name].pid, limits.Limits(512, 0.5))
    procs["hub"] = _proc("import time; time.sleep(600)", "/venv/bin/jupyterhub", "-f", "jupyterhub_config.py")
    procs["proxy"] = _proc("import time; time.sleep(600)", "configurable-http-proxy", "--ip", "127.0.0.1")
    (state / "jupyterhub.pid").write_text(str(procs["hub"].pid))
    (state / "proxy.pid").write_text(str(procs["proxy"].pid))
    # not this server's: a VM of the same student name on another state directory, and a
    # pid file naming a process that is not a hub
    other = tmp_path / "other" / "users" / names[0] / "home.img"
    procs["other-vm"] = _proc("import time; time.sleep(600)", "-name", vm.vm_marker(names[0]), "-drive",
                              f"file={other},format=raw")
    time.sleep(0.3)
    yield state, names, procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()
    for name in names:
        limits.remove(name)


def test_stop_gives_back_this_server_and_nothing_else(server):
    state, names, procs = server
    stranger = _proc("import time; time.sleep(600)")
    try:
        assert len(leftovers(state)) == 2 + 2 + len(limits.held(names[0])) + len(limits.held(names[1]))
        said = []
        t = time.monotonic()
        assert stop(state, grace=2, say=said.append) == []
        took = time.monotonic() - t
        for key in ("hub", "proxy", *names):
            assert procs[key].wait(5) is not None, key
        assert procs[names[0]].returncode == 0                 # powered off when asked
        assert procs[names[1]].returncode == -15               # ignored the request: ended after the grace
        assert took >= 2
        assert procs["other-vm"].poll() is None                # another server's VM with the same name
        assert not limits.held(names[0]) and not limits.held(names[1])
        assert not (state / "users" / names[0] / "spawn" / "env").exists()     # the token went
        assert any("2 VM(s)" in s for s in said)
        # a pid file naming someone else's process: nothing signalled
        (state / "jupyterhub.pid").write_text(str(stranger.pid))
        assert stop(state, grace=1, say=lambda m: None) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_from_the_command_line(server, tmp_path, capsys):
    state, names, procs = server
    assert cli_main(["hub", "stop", "--state", str(state), "--grace", "1"]) == 0
    assert "nothing of it is left running" in capsys.readouterr().out
    assert cli_main(["hub", "stop", "--state", str(tmp_path / "nowhere")]) == 2
    assert "not a class server's state directory" in capsys.readouterr().err
