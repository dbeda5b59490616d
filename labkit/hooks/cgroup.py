"""cgroup programs: what a cgroup's sockets send and receive (cgroup_skb) and the connects they make
(cgroup/connect4), attached to a cgroup v2 directory (``Lab.attach_cgroup``); and the lab's own cgroups
(:class:`Cgroup`), made and given back like sandboxes.

A cgroup program is attached to a directory of the cgroup v2 hierarchy and runs for every socket whose
cgroup is that one or below it (a socket belongs to the cgroup of the process that made it):

    ingress     BPF_CGROUP_INET_INGRESS, a CGROUP_SKB program on each packet a socket receives
    egress      BPF_CGROUP_INET_EGRESS, the same on each packet a socket sends
    connect4    BPF_CGROUP_INET4_CONNECT, a CGROUP_SOCK_ADDR program on each IPv4 connect() (TCP and UDP)

A cgroup_skb program returns 1 (let the packet go) or 0 (drop it: the sender sees EPERM); a connect4
program returns 1 (go on) or 0 (refuse: connect() fails with EPERM). labkit attaches through a bpf_link
(labkit.hooks.link with the cgroup's directory fd; kernel >= 5.7): several programs may sit on one
cgroup, and the kernel takes each off when its process dies. Only the v2 hierarchy has cgroup BPF:
:func:`cgroup2_root` finds where it is mounted (``/sys/fs/cgroup`` on a v2 host, ``/sys/fs/cgroup/unified``
on a hybrid one, ``/run/labkit/cgroup2`` where scripts/setup.sh mounted one on a v1-only host).

The rules of an attach, in order: refuse bad arguments (the attach type, the cgroup) and a program of
another kind before touching the kernel; refuse a cgroup labkit did not make (the hierarchy's root holds
every process of the machine, JupyterLab and SSH among them) unless ``force=True``; give back what this
process held under the same key (a re-run cell replaces); load the function with its program type (and,
for connect4, its expected attach type) and make the link.

The lab's cgroups: ``Cgroup("web")`` makes ``<cgroup2 root>/labkit-<id>-web``, its record written first
under /run/labkit/cgroups (owner pid + start time), so a dead owner's cgroup is found by
labkit.net.leftovers (:class:`CgroupRecords`): the processes still in it go back to the root cgroup and
the directories are removed. ``cg.child("a")`` makes a cgroup inside it; ``cg.popen(...)``/``cg.run(...)``
start a process in it (it moves itself in before it runs anything, so every socket it makes is the
cgroup's); ``cg.close()`` gives everything back (processes still in it go to the root cgroup).

Why this file is long: a kind is one module (labkit.hooks), and this kind's target is a cgroup the lab
makes itself; the cgroup, its records (for leftovers) and the attach are one job here, as a sandbox is
to XDP's.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit import owners
from labkit._errors import (
    ArgumentError,
    AttachError,
    ClosedError,
    NotSupportedError,
    PrivilegeError,
    ProgramKindError,
)
from labkit.attach import Attachment
from labkit.owners import claim, forget, held
from labkit.hooks.link import link_create, means_unsupported
from labkit.hooks.protocol import Hook, check_choice, mismatch_message, register
from labkit.programs.compile import Program, resolve_source
from labkit.programs.kinds import defined_functions, kind_of

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["ATTACH_TYPES", "CGROUP_RECORDS", "Cgroup", "CgroupAttachment", "CgroupHook", "CgroupRecords", "HOOK",
           "OWN_MOUNT", "PREFIX", "cgroup2_root", "cgroup_of", "labkit_cgroups"]

#: enum bpf_attach_type (uapi/linux/bpf.h): BPF_CGROUP_INET_INGRESS, _EGRESS, BPF_CGROUP_INET4_CONNECT
ATTACH_TYPES = {"ingress": 0, "egress": 1, "connect4": 10}
#: enum bpf_prog_type: BPF_PROG_TYPE_CGROUP_SKB, BPF_PROG_TYPE_CGROUP_SOCK_ADDR
_PROG_TYPES = {"ingress": 8, "egress": 8, "connect4": 18}
#: the program kinds (labkit.programs.kinds) each attach type takes
_KINDS = {"ingress": ("skb", "cgroup_skb"), "egress": ("skb", "cgroup_skb"), "connect4": ("sock_addr",)}
#: every cgroup labkit makes is a directory of the v2 root called labkit-<id>[-<name>]
PREFIX = "labkit-"
#: where scripts/setup.sh mounts a cgroup2 hierarchy of the project's own on a host that has none (v1 only)
OWN_MOUNT = Path("/run/labkit/cgroup2")
CGROUP_RECORDS = Path("/run/labkit/cgroups")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_MOUNTINFO = Path("/proc/self/mountinfo")


# ------------------------------------------------------------------ the hierarchy
def cgroup2_root(mountinfo: str | None = None) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (its root, not a sub-directory bind-mounted elsewhere),
    or None when this machine has none (a v1-only host where scripts/setup.sh has not run).
    ``mountinfo``: /proc/self/mountinfo's text (read here when None)."""
    if mountinfo is None:
        try:
            mountinfo = _MOUNTINFO.read_text()
        except OSError:
            return None
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split() or right.split()[0] != "cgroup2":
            continue
        if fields[3] != "/":  # a sub-tree of the hierarchy mounted somewhere (a container's view)
            continue
        found.append(Path(fields[4].replace("\\040", " ")))
    for preferred in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"), OWN_MOUNT):
        if preferred in found:
            return preferred
    return found[0] if found else None


def _root() -> Path:
    root = cgroup2_root()
    if root is None:
        raise NotSupportedError("this machine has no cgroup v2 hierarchy mounted (only cgroup v1: `stat -fc %T "
                                "/sys/fs/cgroup` says tmpfs, and no cgroup2 mount): cgroup BPF programs need v2. "
                                f"Run ./lab setup (scripts/setup.sh mounts one at {OWN_MOUNT})", feature="cgroup v2")
    return root


def cgroup_of(pid: int | str = "self") -> str:
    """The cgroup v2 path of process ``pid`` ("/" is the root), from /proc/PID/cgroup's ``0::`` line."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return "/"


def labkit_cgroups() -> list[Path]:
    """Every labkit-* cgroup directory at the top of the v2 hierarchy ([] without one)."""
    root = cgroup2_root()
    if root is None:
        return []
    try:
        return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and p.is_dir())
    except OSError:
        return []


def _procs(path: Path) -> list[int]:
    try:
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _tree(path: Path) -> list[Path]:
    """``path`` and every cgroup below it, deepest first (the order rmdir needs)."""
    out = []
    for dirpath, dirnames, _files in os.walk(path):
        out += [Path(dirpath) / d for d in dirnames]
    return sorted(out, key=lambda p: len(p.parts), reverse=True) + [path]


def _remove_tree(path: Path) -> None:
    """Move every process in ``path``'s tree to the hierarchy's root cgroup, then remove the directories
    (deepest first). A directory already gone is fine."""
    root = cgroup2_root() or path.parent
    for p in _tree(path):
        for pid in _procs(p):
            try:
                (root / "cgroup.procs").write_text(str(pid))
            except ProcessLookupError:
                pass
            except OSError as e:
                if e.errno != errno.ESRCH:
                    raise
        try:
            p.rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno == errno.EBUSY:  # a process entered meanwhile: one more round
                for pid in _procs(p):
                    (root / "cgroup.procs").write_text(str(pid))
                p.rmdir()
            else:
                raise


# ------------------------------------------------------------------ records
class CgroupRecords:
    """The lab's cgroups, for labkit.net.leftovers (a Recorder, labkit.hooks.protocol): one record per
    top cgroup under /run/labkit/cgroups, written before the directory is made; found where the
    directory still is, removed with the processes in it moved to the root cgroup."""

    name = "cgroup"

    def __init__(self, state_dir: Path = CGROUP_RECORDS):
        self.state_dir = state_dir

    def records(self) -> list[dict]:
        return owners.read_records(self.state_dir, "cgroup")

    def _found(self, cgroup: Path, record: dict | None) -> dict:
        found = {"netns": None, "iface": cgroup.name, "cgroup": str(cgroup), "procs": len(_procs(cgroup))}
        if record is not None:
            found["record"] = record
        return found

    def still_there(self, records: list[dict]) -> list[dict]:
        """The recorded cgroups whose directory is still there."""
        return [self._found(Path(r["cgroup"]), r) for r in records if Path(r["cgroup"]).is_dir()]

    def everywhere(self) -> list[dict]:
        """Every labkit-* cgroup at the top of the v2 hierarchy, with its record when it has one."""
        recorded = {r["cgroup"]: r for r in self.records()}
        return [self._found(p, recorded.get(str(p))) for p in labkit_cgroups()]

    def slot(self, found_or_record: dict) -> tuple:
        return ("cgroup", found_or_record.get("cgroup"))

    def describe(self, found: dict) -> tuple[str, str]:
        n = found.get("procs", 0)
        inside = f"{n} process{'es' if n != 1 else ''} in it, moved to the root cgroup" if n else "empty"
        return (f"cgroup {found['cgroup']} ({inside})",
                f"cgroup {found['iface']}")

    def remove(self, found: dict) -> None:
        _remove_tree(Path(found["cgroup"]))

    def not_removed(self, description: str, error: Exception) -> str:
        return f"could not remove {description}: {error}"


# ------------------------------------------------------------------ the lab's cgroups
def _check_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ArgumentError(f"a cgroup's {what} is 1 to 40 letters, digits, '.', '_' or '-' (like 'web'), "
                            f"got {name!r}")
    return name


def _enter(procs: str) -> None:
    """In a child before it runs anything (subprocess's preexec_fn): move itself into the cgroup
    (plain system calls only: the parent may have other threads)."""
    fd = os.open(procs, os.O_WRONLY)
    try:
        os.write(fd, b"0")   # "0": the process that writes
    finally:
        os.close(fd)


class Cgroup:
    """A cgroup v2 directory the lab made: ``Cgroup("web")`` is ``<root>/labkit-<id>-web`` (recorded for
    leftovers first), ``cg.child("a")`` one inside it. ``.path``, ``.id`` (the cgroup id:
    bpf_get_current_cgroup_id() and bpf_skb_cgroup_id() give it; the directory's inode number),
    ``.pids()``; ``add(pid)`` moves a process in; ``popen``/``run`` start one in it. ``close()`` (also
    ``with``, re-making the same name, interpreter exit) moves the processes still in it to the root
    cgroup and removes the directories. Attach programs with ``lab.attach_cgroup(program, cg, ...)``."""

    def __init__(self, name: str = "lab", *, _parent: "Cgroup | None" = None):
        _check_name(name)
        self.name = name
        self.parent = _parent
        self.children: list[Cgroup] = []
        self._closed = False
        if _parent is None:
            root = _root()
            if os.geteuid() != 0:
                raise PrivilegeError(f"making a cgroup needs root (the directories of {root} are root's); this "
                                     f"process is uid {os.geteuid()}. Start the lab with ./lab start (it runs as "
                                     "root), or run Python as root (sudo)", missing=("root",))
            self.uid = secrets.token_hex(4)
            self.path = root / f"{PREFIX}{self.uid}-{name}"
            self.key: tuple = ("cgroup", name)
            self._record = owners.write_record(CGROUP_RECORDS, self.uid, self.path)
            try:
                self.path.mkdir()
            except BaseException:
                self._record.unlink(missing_ok=True)
                raise
            self._id = os.stat(self.path).st_ino
            claim(self, self.close)   # a cgroup of the same name this process made before (a re-run cell) is closed
        else:
            self.uid = _parent.uid
            self.path = _parent.path / name
            self.key = ("cgroup", *_parent.key[1:], name)
            self._record = None
            self.path.mkdir()
            self._id = os.stat(self.path).st_ino

    # ------------------------------------------------------------ what it is
    @property
    def id(self) -> int:
        """The cgroup id (what bpf_get_current_cgroup_id() returns for a process in it; kept after close)."""
        return self._id

    @property
    def closed(self) -> bool:
        return self._closed

    def pids(self) -> list[int]:
        """The processes in this cgroup (not in its children)."""
        self._check_open()
        return _procs(self.path)

    def child(self, name: str) -> "Cgroup":
        """A cgroup inside this one (given back with it); the same name again gives the old one back first."""
        self._check_open()
        _check_name(name, "child's name")
        for old in [c for c in self.children if c.name == name]:
            old.close()
        c = Cgroup(name, _parent=self)
        self.children.append(c)
        return c

    # ------------------------------------------------------------ processes
    def add(self, pid: int) -> None:
        """Move process ``pid`` into this cgroup (sockets it makes from now on are this cgroup's)."""
        self._check_open()
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise ArgumentError(f"pid must be a process id (a positive int), got {pid!r}")
        try:
            (self.path / "cgroup.procs").write_text(str(pid))
        except ProcessLookupError:
            raise ArgumentError(f"no process {pid} to move into cgroup {self.path}") from None

    def popen(self, args, **kw) -> subprocess.Popen:
        """``subprocess.Popen(args, **kw)`` whose process is in this cgroup before it runs anything."""
        self._check_open()
        procs = str(self.path / "cgroup.procs")
        return subprocess.Popen(args, preexec_fn=lambda: _enter(procs), **kw)

    def run(self, args, **kw) -> subprocess.CompletedProcess:
        """``subprocess.run(args, **kw)`` in this cgroup (a timeout= is the caller's bound)."""
        self._check_open()
        procs = str(self.path / "cgroup.procs")
        return subprocess.run(args, preexec_fn=lambda: _enter(procs), **kw)

    # ------------------------------------------------------------ giving back
    def close(self, state: str = "closed") -> None:
        """Move the processes still in it to the root cgroup and remove it (idempotent)."""
        if self._closed:
            return
        for c in list(self.children):
            c.close(state)
        self.children.clear()
        self._closed = True
        try:
            _remove_tree(self.path)
        finally:
            if self.parent is None:
                forget(self)
                if self._record is not None:
                    self._record.unlink(missing_ok=True)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"cgroup {self.path} is closed; make a new one with labkit.Cgroup()")

    def __enter__(self) -> "Cgroup":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"id {self._id}, {len(_procs(self.path))} processes"
        return f"<labkit.Cgroup {self.path} ({state})>"


# ------------------------------------------------------------------ the hook kind
class CgroupAttachment(Attachment):
    """A program on one cgroup through a bpf_link: ``attach_type`` ("ingress", "egress" or "connect4"),
    ``cgroup`` (its path). The kernel takes it off when this process dies; detach() closes the link."""

    kind = "cgroup"

    def __init__(self, *, attach_type: str, cgroup: str, link_fd: int, **kw):
        super().__init__(**kw)
        self.attach_type = attach_type
        self.cgroup = cgroup
        self._link_fd: int | None = link_fd

    def detach_hook(self) -> None:
        if self._link_fd is not None:
            os.close(self._link_fd)
            self._link_fd = None

    def __repr__(self) -> str:
        return f"<labkit.CgroupAttachment {self.program.name} on {self.cgroup} {self.attach_type}: {self.state}>"


def _is_labkit_cgroup(path: Path) -> bool:
    root = cgroup2_root()
    if root is None:
        return False
    try:
        rel = path.resolve().relative_to(root)
    except ValueError:
        return False
    return bool(rel.parts) and rel.parts[0].startswith(PREFIX)


class CgroupHook(Hook):
    name = "cgroup"
    call = "attach_cgroup"
    fits = ("skb", "cgroup_skb", "sock_addr")
    wants = ("a cgroup program (cgroup_skb: a function taking struct __sk_buff *; connect4: one taking "
             "struct bpf_sock_addr *)")
    home = {"cgroup_skb": "Attach it with lab.attach_cgroup(program, cgroup, 'ingress' or 'egress') instead.",
            "sock_addr": "Attach it with lab.attach_cgroup(program, cgroup, 'connect4') instead."}
    needs = "cgroup"

    def __init__(self) -> None:
        self.records = CgroupRecords()

    def validate(self, program: Program | str, *, cgroup: Any = None, attach_type: Any = "egress",
                 fn: str | None = None, force: bool = False) -> dict:
        check_choice("attach_type", attach_type, tuple(ATTACH_TYPES),
                     " (ingress: packets its sockets receive, egress: packets they send, connect4: their IPv4 "
                     "connects)")
        if isinstance(cgroup, Cgroup):
            if cgroup.closed:
                raise ClosedError(f"cgroup {cgroup.path} is closed; make a new one with labkit.Cgroup()")
        elif cgroup is None:
            raise ArgumentError("attach_cgroup needs a cgroup: a labkit.Cgroup (cg = labkit.Cgroup('web')) or the "
                                "path of a cgroup v2 directory")
        elif not isinstance(cgroup, (str, os.PathLike)) or not str(cgroup):
            raise ArgumentError(f"cgroup must be a labkit.Cgroup or the path of a cgroup v2 directory, got "
                                f"{type(cgroup).__name__} {cgroup!r}")
        if not isinstance(force, bool):
            raise ArgumentError(f"force must be True or False, got {force!r}")
        return {"cgroup": cgroup, "attach_type": attach_type, "fn": fn, "force": force}

    def supported(self, options: dict) -> None:
        _root()

    def make(self, lab: "Lab", program: Program | str, *, cgroup: "Cgroup | str", attach_type: str,
             fn: str | None, force: bool) -> CgroupAttachment:
        path, label = _target(cgroup, force)
        _check_attach_kind(program, fn, attach_type)
        owns = isinstance(program, str)
        prog = lab.load(program, need="cgroup") if owns else program
        try:
            fname = prog.function_name(fn)
            key = ("cgroup", label, attach_type, f"{prog.name}:{fname}")
            old = held(key)
            if old is not None:
                old.detach("replaced")
            f = prog.load_function(fname, _PROG_TYPES[attach_type],
                          ATTACH_TYPES[attach_type] if attach_type == "connect4" else -1)
            link_fd = _link(f.fd, path, attach_type, fname)
        except BaseException:
            if owns:
                prog.close()
            raise
        att = CgroupAttachment(attach_type=attach_type, cgroup=str(path), link_fd=link_fd, key=key,
                               target=str(path), program=prog, lab=lab, hook=f"cgroup:{path.name}:{attach_type}",
                               owns_program=owns)
        claim(att, att.detach)
        return att


def _target(cgroup: "Cgroup | str", force: bool) -> tuple[Path, str]:
    """(the cgroup's directory, what the attachment's key calls it): a labkit Cgroup, or a directory of the
    v2 hierarchy (one labkit did not make only with ``force``: it reaches every process in it)."""
    if isinstance(cgroup, Cgroup):
        return cgroup.path, "/".join(cgroup.key[1:])
    root = _root()
    path = Path(os.fspath(cgroup))
    if not path.is_absolute():
        path = root / path
    if not (path / "cgroup.procs").exists():
        raise AttachError(f"{path} is not a cgroup v2 directory (the v2 hierarchy is mounted at {root}); make one "
                          "with labkit.Cgroup('name')", target=str(path))
    if not _is_labkit_cgroup(path) and not force:
        n = len(_procs(path))
        what = ("the root of the cgroup v2 hierarchy: every process of this machine (JupyterLab, SSH, "
                "systemd) is in it or below it" if path.resolve() == root.resolve()
                else f"a cgroup labkit did not make ({n} processes in it, and whatever is below it)")
        raise AttachError(f"{path} is {what}; a cgroup program there reaches all of them. Attach to a cgroup of "
                          "the lab's own (labkit.Cgroup('name')), or pass force=True if you mean it",
                          target=str(path))
    return path, str(path)


def _check_attach_kind(program: Program | str, fn: str | None, attach_type: str) -> None:
    """ProgramKindError when the function's kind does not fit ``attach_type`` (a connect4 program on
    ingress, a cgroup_skb one on connect4)."""
    if isinstance(program, Program):
        name, source, functions = program.name, program.source, program.functions
    else:
        name, source, _path = resolve_source(program)
        functions = defined_functions(source)
    kind = kind_of(source, fn, functions)
    if kind is None or kind.kind in _KINDS[attach_type]:
        return
    if kind.kind in HOOK.fits:
        wanted = ("a cgroup_skb program (a function taking struct __sk_buff *)" if attach_type != "connect4"
                  else "a connect4 program (a function taking struct bpf_sock_addr *)")
        raise ProgramKindError(f"{name} is {'a connect4' if kind.kind == 'sock_addr' else 'a cgroup_skb'} program "
                               f"({kind.because}); attach_type={attach_type!r} needs {wanted}",
                               target=name, kind=kind.kind, call=HOOK.call)
    raise ProgramKindError(mismatch_message(name, kind, HOOK), target=name, kind=kind.kind, call=HOOK.call)


def _link(prog_fd: int, path: Path, attach_type: str, fname: str) -> int:
    try:
        cg_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise AttachError(f"cannot open cgroup {path}: {e.strerror}", target=str(path)) from None
    try:
        return link_create(prog_fd, cg_fd, ATTACH_TYPES[attach_type], feature="cgroup bpf_link")
    except OSError as e:
        hint = (" (cgroup bpf_links need kernel 5.7 or later)" if means_unsupported(e.errno) else "")
        raise AttachError(f"attaching {fname} to {path} ({attach_type}) through a bpf_link failed: "
                          f"{e.strerror}{hint}", target=str(path)) from None
    finally:
        os.close(cg_fd)


HOOK = register(CgroupHook())
