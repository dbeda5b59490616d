"""cgroup programs on the real kernel (labkit.hooks.cgroup): the lab's own cgroups made and given back,
connect4 refusing a port for one cgroup only, cgroup_skb counting bytes per cgroup, a re-attach that
replaces, the root refused without force, and a killed owner's cgroup reaped with its links gone.
Traffic only on 127.0.0.1."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

import labkit
from labkit import owners
from labkit.hooks.cgroup import CGROUP_RECORDS, cgroup2_root, cgroup_of, labkit_cgroups
from labkit.net.leftovers import REAP_LOCK, Leftovers
from labkit.views.tables import map_dataframe

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

#: prints the errno of the connect (0: it worked) and the bytes TCP sent again (tcp_info's tcpi_bytes_retrans,
#: at offset 208 since 4.19: a loaded host's loopback can resend a segment, and egress counts it twice)
CONNECT = textwrap.dedent("""
    import socket, struct, sys
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
        s.sendall(b"x" * int(sys.argv[2]))
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):        # until the listener has read it all and closed
            pass
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
        print(0, struct.unpack_from("<Q", info, 208)[0] if len(info) >= 216 else 0)
    except OSError as e:
        print(e.errno, 0)
""")


@pytest.fixture
def listener():
    """A listener on 127.0.0.1 whose thread reads each connection to its end, then closes it."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = ls.accept()
            except OSError:      # closed: the test is over
                return
            with conn:
                conn.settimeout(10)
                try:
                    while conn.recv(65536):
                        pass
                except OSError:
                    pass

    t = threading.Thread(target=serve, name="lk13-listener", daemon=True)
    t.start()
    yield ls
    ls.shutdown(socket.SHUT_RDWR)
    ls.close()
    t.join(timeout=10)


def connect(cg, port: int, send: int = 0) -> int:
    """The errno a child in ``cg`` (or, for None, one outside any lab cgroup) gets connecting to ``port``."""
    return _connect(cg, port, send)[0]


def _connect(cg, port: int, send: int = 0) -> tuple[int, int]:
    """(the errno, the bytes TCP sent again) of a child in ``cg`` that connects to ``port`` and sends ``send``."""
    args = [sys.executable, "-c", CONNECT, str(port), str(send)]
    run = cg.run if cg is not None else subprocess.run
    out = run(args, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    err, resent = map(int, out.stdout.split())
    return err, resent


def mine() -> list:
    return [p for p in labkit_cgroups() if p.name.startswith("labkit-")
            and any(r.get("cgroup") == str(p) and r.get("pid") == os.getpid()
                    for r in labkit.hooks.cgroup.HOOK.records.records())]


def test_a_cgroup_is_made_recorded_and_given_back():
    assert cgroup2_root() is not None
    with labkit.Cgroup("lk13-made") as cg:
        a = cg.child("a")
        assert cg.path.parent == cgroup2_root() and cg.path.name.startswith("labkit-") and a.path.parent == cg.path
        assert cg.path in mine() and a.id == os.stat(a.path).st_ino != cg.id
        p = a.popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, text=True)
        try:
            assert a.pids() == [p.pid] and cgroup_of(p.pid) == f"/{cg.path.name}/a"
        finally:
            p.stdin.close()
            p.wait(timeout=30)
        q = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        a.add(q.pid)                       # still in it when the cgroup is closed: moved to the root cgroup
    try:
        assert not cg.path.exists() and cg.path not in mine() and cgroup_of(q.pid) == "/"
        assert not list(CGROUP_RECORDS.glob(f"{cg.uid}.json"))
    finally:
        q.stdin.close()
        q.wait(timeout=30)
    with pytest.raises(labkit.ClosedError):
        cg.child("b")


def test_making_the_same_name_again_gives_the_old_one_back():
    first = labkit.Cgroup("lk13-again")
    second = labkit.Cgroup("lk13-again")
    try:
        assert first.closed and not first.path.exists() and second.path.exists()
    finally:
        second.close()


def test_connect4_refuses_one_port_for_the_cgroup_it_sits_on_only(lab, listener):
    port = listener.getsockname()[1]
    with labkit.Cgroup("lk13-connect") as cg:
        a, b = cg.child("a"), cg.child("b")
        att = lab.attach_cgroup(lab.load("cgroup_connect_block", defines={"LK_PORT": port}), a, "connect4")
        assert att.attach_type == "connect4" and att.cgroup == str(a.path)
        assert connect(a, port) == 1            # EPERM: refused by the program
        assert connect(b, port) == 0 and connect(None, port) == 0
        refused = sum(att.program["verdicts"][1])   # per CPU
        assert refused == 1
        att.detach()
        assert connect(a, port) == 0            # detached: the link is gone


def test_cgroup_skb_counts_bytes_per_cgroup(lab, listener):
    port = listener.getsockname()[1]
    with labkit.Cgroup("lk13-bytes") as cg:
        a, b = cg.child("a"), cg.child("b")
        p = lab.load("cgroup_skb_bytes")
        lab.attach_cgroup(p, cg, "egress", fn="lk_cgroup_egress")
        lab.attach_cgroup(p, cg, "ingress", fn="lk_cgroup_ingress")
        (err_a, resent_a), (err_b, resent_b) = _connect(a, port, 200_000), _connect(b, port, 50_000)
        assert err_a == 0 and err_b == 0
        sent = map_dataframe(p, "egress").set_index("key")["bytes"]
    assert set(sent.index) == {a.id, b.id}
    # the payload and its headers, and what TCP sent again (counted again on the way out)
    assert 200_000 < sent[a.id] < 210_000 + resent_a and 50_000 < sent[b.id] < 60_000 + resent_b, (sent, resent_a,
                                                                                                 resent_b)


def test_attaching_again_replaces(lab, listener):
    port = listener.getsockname()[1]
    with labkit.Cgroup("lk13-replace") as cg:
        first = lab.attach_cgroup("cgroup_connect_block", cg, "connect4")
        second = lab.attach_cgroup("cgroup_connect_block", cg, "connect4")
        assert first.state == "replaced" and second.attached and lab.attachments == [second]


def test_a_cgroup_labkit_did_not_make_needs_force(lab):
    root = cgroup2_root()
    with pytest.raises(labkit.AttachError, match="root of the cgroup v2 hierarchy.*force=True"):
        lab.attach_cgroup("cgroup_connect_block", root, "connect4")
    with pytest.raises(labkit.AttachError, match="not a cgroup v2 directory"):
        lab.attach_cgroup("cgroup_connect_block", "/tmp", "connect4")
    assert not lab.attachments


def test_a_killed_owner_leaves_a_cgroup_that_is_reaped(listener):
    """The link dies with its process (the kernel's doing); the cgroup, a directory, stays until a
    labkit entry point reaps the dead owner's record (its processes go to the root cgroup)."""
    port = listener.getsockname()[1]
    code = textwrap.dedent(f"""
        import sys, labkit
        lab = labkit.Lab()
        cg = labkit.Cgroup("lk13-killed")
        lab.attach_cgroup(lab.load("cgroup_connect_block", defines={{"LK_PORT": {port}}}), cg, "connect4")
        print(cg.path, flush=True)
        sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lock = os.open(REAP_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        path = p.stdout.readline().strip()
        assert path
        # another process's Lab() (a test beside this one) would reap it before it is looked at
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        assert owners.wait_gone(p.pid, 10)
        found = Leftovers.find(owner_pid=p.pid)
        assert [x["cgroup"] for x in found.attached["cgroup"]] == [path]
        with open(os.path.join(path, "cgroup.procs")) as f:
            assert f.read() == ""
        out: list[str] = []
        assert found.remove(out=out.append) == 0
        assert not os.path.exists(path) and any("cgroup" in line for line in out)
        assert not [r for r in labkit.hooks.cgroup.HOOK.records.records() if r.get("pid") == p.pid]
    finally:
        os.close(lock)
        if p.poll() is None:
            p.kill()
            p.wait()


def test_making_a_cgroup_without_root_says_how():
    code = "import labkit\ntry:\n    labkit.Cgroup('lk13-noroot')\nexcept labkit.PrivilegeError as e:\n    print(e)\n"
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                        sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
                       env={**os.environ, "HOME": "/tmp"})
    assert "making a cgroup needs root" in r.stdout and "./lab start" in r.stdout, r.stdout + r.stderr
    assert not [p for p in labkit_cgroups() if p.name.endswith("-lk13-noroot")]
