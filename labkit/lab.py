"""Lab: owns every program and attachment made through it, and gives them back.

Safety rules (docs/ARCHITECTURE.md):
* Every attachment has a key (kind, target, program). Attaching under a key that
  is live anywhere in this process, in this Lab or another, first detaches the
  old one: re-running a notebook cell never leaves two copies firing.
* ``close()``, ``with`` exit and interpreter exit detach everything; BCC's own
  objects live on through ``atexit`` and ``del`` does not detach them, so labkit
  calls their cleanup itself and drops BCC's atexit hook.
* Re-running cells leaves nothing behind: a Lab forgets an attachment once it is
  given back, and holds its programs weakly; a program nobody holds any more (a
  re-run ``p = lab.load(...)``, a detached attachment's program) has its maps and
  compiled module freed at the Lab's next load or close.

Why this file is long: a Lab is the one object a student holds, so every way
in (load, the tracers, the attach calls for each hook, event buffers, CO-RE
objects) is a method here with its docstring, each a few lines handing the
work to its room (programs/, events/, hooks/: one module per attach kind);
splitting the class would split the API a lesson teaches.
"""

from __future__ import annotations

import html
import weakref
from typing import Iterable, Mapping, Sequence

from labkit._errors import ArgumentError, AttachError, ClosedError, NotSupportedError, VerifierError
from labkit.attach import Attachment
from labkit.events.buffers import PerfBufferReader, RingMapReader
from labkit.events.schemas import CLONE_DTYPE, SYSCALL_DTYPE, clone_frame, syscall_frame
from labkit.events.stream import DEFAULT_POLL_INTERVAL, DEFAULT_WINDOW, EventStream, check_window
from labkit.hooks import by_call
from labkit.hooks import lsm as _lsm
from labkit.hooks.cgroup import Cgroup, CgroupAttachment
from labkit.hooks.probe import TraceAttachment, attach_probes
from labkit.hooks.tc import TcAttachment
from labkit.hooks.uprobe import check_pid
from labkit.hooks.xdp import XdpAttachment
from labkit.net.leftovers import reap_dead_owners
from labkit.owners import claim, forget
from labkit.programs import hooks as _hooks
from labkit.programs import privileges as _privileges
from labkit.programs.compile import Program, compile_c, free_module, resolve_source
from labkit.programs.core import CoreObject, compile_core, resolve_core_source
from labkit.programs.probes import autoload_probes

__all__ = ["DEFAULT_RING_PAGES", "CoreAttachment", "Lab", "syscalls"]


DEFAULT_RING_PAGES = 1024  # 4 MiB of ring buffer: room for a burst of ~40k events between polls


def _cflags(defines: dict | None, cflags: Iterable[str]) -> list[str]:
    if isinstance(cflags, str) or not all(isinstance(f, str) for f in cflags):
        raise ArgumentError(f"cflags must be a list of strings (like ['-DDEBUG']), got {cflags!r}")
    if defines is not None and not isinstance(defines, Mapping):
        raise ArgumentError(f"defines must be a dict of C macro names and values (like {{'LK_FILTER_PID': 42}}), "
                            f"got {defines!r}")
    out = list(cflags)
    for k, v in (defines or {}).items():
        if not str(k).isidentifier():
            raise ArgumentError(f"defines: {k!r} is not a C identifier (a macro name like 'LK_FILTER_PID')")
        out.append(f"-D{k}={int(v) if isinstance(v, bool) else v}")
    return out


class CoreAttachment(Attachment):
    """A program of a CO-RE object on the bpf_link libbpf made for it
    (``Lab.load_object``): detaching destroys the link; the program stays
    loaded with its object until the object is closed."""

    kind = "core"

    def detach_hook(self) -> None:
        self.program.detach()


# ----------------------------------------------------------------------- Lab
class Lab:
    """Owns the programs it loads and the attachments it makes.

    >>> with labkit.Lab() as lab:
    ...     s = lab.trace_clone()
    ...     s.to_dataframe()
    """

    def __init__(self) -> None:
        """A new Lab first removes what dead owners left (a crashed kernel's
        sandboxes and netlink XDP) and says so in one line on stderr."""
        reap_dead_owners()
        self._attachments: list[Attachment] = []
        self._programs: weakref.WeakSet[Program] = weakref.WeakSet()
        self._readers: list = []  # perf and ring buffer readers (open_perf_buffer, open_ring_buffer)
        self._objects: list[CoreObject] = []
        self._closed = False

    # ------------------------------------------------------------- loading
    def load(self, name_or_text: str, *, cflags: Sequence[str] = (), defines: dict | None = None,
             need: str = "tracing", name: str | None = None, usdt: tuple | None = None,
             outside: dict | None = None) -> Program:
        """Compile a snippet (``bpf_snippets/<name>.c``) or C text into a Program.

        Functions named the BCC way (``TRACEPOINT_PROBE(cat, event)``, i.e.
        ``tracepoint__cat__event``; ``kprobe__fn``, ``kretprobe__fn``,
        ``raw_tracepoint__event``) are attached here, as BCC would, but as this
        Lab's attachments (``prog.auto_attachments``): detached on close,
        replaced when the same function is loaded again (a re-run cell).

        ``name``: what errors and attachments call the program (default: the
        snippet's file name, or ``<text>.c`` for C text).

        ``usdt``: (pid or binary path, "provider:probe", C function) — the USDT
        probe the program reads (``bpf_usdt_readarg``). BCC must know it when
        it compiles; attach it with :meth:`attach_usdt` (load does not).

        ``outside``: for a program with LSM_PROBE functions, what a process outside the lab's cgroups must
        still be able to do once each is attached, ``{"exec": [programs], "open": [files]}`` (besides
        running /bin/true and opening Python, always tried): the guard of labkit.hooks.lsm tries them at
        once and detaches a program that refuses one (MachineWideError).

        Raises ArgumentError (no such snippet, bad defines/cflags/need),
        CompileError with clang's diagnostics (lines point into the snippet as
        written), VerifierError, AttachError, PrivilegeError, NotSupportedError.
        """
        self._check_open()
        if need not in _privileges.NEEDS:
            raise ArgumentError(f"need must be one of {', '.join(_privileges.NEEDS)}, got {need!r}")
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise ArgumentError(f"name must be a non-empty string (what errors call the program), got {name!r}")
        acts = _lsm.guard_acts(outside)
        _free_unreferenced()
        found, text, path = resolve_source(name_or_text)
        name = name or found
        flags = _cflags(defines, cflags)
        compiled = compile_c(text, name, flags, need=need, usdt=usdt)
        prog = Program(name, text, flags, compiled, path)
        prog.guard_acts = acts
        self._programs.add(prog)
        weakref.finalize(prog, _unreferenced.append, prog.bpf).atexit = False
        try:
            for kind, target, fn in autoload_probes(prog.functions, prog.syscall_symbol):
                att = self._keep(attach_probes(self, prog, (kind, target, f"{prog.name}:{fn}"), [(kind, target, fn)],
                                               hook=f"{kind} {target}", owns_program=False))
                prog.auto_attachments.append(att)
        except BaseException:
            for att in prog.auto_attachments:
                att.detach()
            self._programs.discard(prog)
            prog.close()
            raise
        return prog

    # ----------------------------------------------------- attaching: one kind each (labkit.hooks)
    def _attach(self, call: str, program: Program | str, **options) -> Attachment:
        """Hand the call to its hook kind (labkit.hooks), which checks everything
        before it touches the kernel, and keep what it attached."""
        self._check_open()
        return self._keep(by_call(call).attach(self, program, **options))

    def _keep(self, att: Attachment) -> Attachment:
        if att not in self._attachments:
            self._attachments.append(att)
        return att

    def attach_tracepoint(self, program: Program | str, tracepoint: str, fn: str | None = None, *,
                          name: str | None = None) -> TraceAttachment:
        """Attach ``fn`` of ``program`` to ``category:event``. Re-attaching the
        same (tracepoint, program) first detaches the previous attachment. A
        program of another kind (an XDP program, a kprobe) is refused with
        ProgramKindError before anything is loaded (labkit.hooks.tracepoint)."""
        return self._attach("attach_tracepoint", program, tracepoint=tracepoint, fn=fn, name=name)

    def attach_kprobe(self, program: Program | str, event: str | None = None, fn: str | None = None, *,
                      syscall: str | None = None, ret: bool = False, name: str | None = None) -> TraceAttachment:
        """Attach ``fn`` of ``program`` to a kernel function ``event``, or to the
        kernel entry of a syscall (``syscall="clone"``), as a kprobe (or, with
        ``ret=True``, a kretprobe). Raises NotSupportedError, before loading
        anything, on kernels built without kprobes: use a tracepoint there; and
        ProgramKindError, first, for a program of another kind (labkit.hooks.kprobe)."""
        return self._attach("attach_kprobe", program, event=event, syscall=syscall, fn=fn, ret=ret, name=name)

    def attach_uprobe(self, program: Program | str, binary_or_library: str, symbol: str, fn: str | None = None, *,
                      ret: bool = False, pid: int | None = None, name: str | None = None) -> TraceAttachment:
        """Attach ``fn`` of ``program`` to the user-space function ``symbol`` of
        a binary (a full path) or a library (``"c"``, ``"libc.so.6"``), as a
        uprobe (on entry) or, with ``ret=True``, a uretprobe (on return).
        ``pid``: fire only in that process (else in every process that runs
        that code). Re-attaching the same (hook, program) replaces the old one;
        a missing library or symbol is an ArgumentError naming close matches
        (labkit.hooks.uprobe)."""
        return self._attach("attach_uprobe", program, binary_or_library=binary_or_library, symbol=symbol, fn=fn,
                            ret=ret, pid=pid, name=name)

    def attach_usdt(self, program: Program | str, provider_probe: str, fn: str | None = None, *,
                    pid: int | None = None, path: str | None = None, name: str | None = None) -> TraceAttachment:
        """Attach ``fn`` to a USDT probe (``"python:function__entry"``) of the
        running process ``pid``, or of the binary ``path`` (probes guarded by
        a semaphore, like Python's, fire only for a pid: the semaphore is set
        in that process). ``program``: C text or a snippet (compiled here with
        the USDT context; ``fn`` is then required), or a Program: one loaded
        with ``lab.load(..., usdt=(pid, provider_probe, fn))`` is attached as
        it is; any other (a ``%%bpf`` cell) is compiled again from its source
        with that context, and the attachment owns the new Program
        (``.program``: read its maps there). See labkit.hooks.usdt."""
        return self._attach("attach_usdt", program, provider_probe=provider_probe, fn=fn, pid=pid, path=path,
                            name=name)

    def attach_perf_event(self, program: Program | str, fn: str | None = None, *, frequency: int = 99,
                          cpu: int | None = None, name: str | None = None) -> TraceAttachment:
        """Run ``fn`` of ``program`` (a function taking ``struct
        bpf_perf_event_data *``) ``frequency`` times a second on every CPU (or
        on ``cpu`` only), sampled by the kernel's CPU clock: in whatever process
        was running there, so counting samples per pid or per stack shows where
        CPU time goes. Attaching the same program again (a re-run cell)
        replaces the old one; a bad frequency or CPU is an ArgumentError
        (labkit.hooks.perf_event)."""
        return self._attach("attach_perf_event", program, fn=fn, frequency=frequency, cpu=cpu, name=name)

    # -------------------------------------------------------------- tracing
    def trace_clone(self, *, pid: int | None = None, hook: str = "auto", window: int = DEFAULT_WINDOW,
                    poll_interval: float = DEFAULT_POLL_INTERVAL, name: str = "trace_clone",
                    ring_pages: int = DEFAULT_RING_PAGES) -> EventStream:
        """Stream one event per process or thread creation — fork, vfork,
        clone and clone3 alike — with time, pid (creator), tid, child_pid, uid,
        comm, kind (fork/vfork/thread) and source (the hook in use).

        ``hook``: "auto" (a kprobe on kernel_clone where the kernel has kprobes,
        else the task:task_newtask tracepoint), "kprobe" or "tracepoint".
        ``pid``: only creations by this process (filtered in the kernel).
        ``window``: how many of the newest events to keep; ``ring_pages``: the
        kernel-side ring buffer size; ``name``: re-using a name replaces the
        stream that had it (a re-run cell), a new name keeps both.
        """
        self._check_open()
        fpid = check_pid(pid)
        check_window(window, poll_interval)
        _privileges.require("tracing")
        tried: list[str] = []
        for choice in _hooks.clone_hooks(hook):
            defines = {"LK_FILTER_PID": fpid, "LK_RINGBUF_PAGES": _check_ring(ring_pages)}
            try:
                if choice.kind == "kprobe":
                    prog = self.load("trace_clone_kprobe", defines=defines)
                    hooks = [("kprobe", choice.target, "lk_clone_entry"), ("kretprobe", choice.target, "lk_clone_ret")]
                else:
                    prog = self.load("trace_clone", defines=defines)
                    hooks = [("tracepoint", choice.target, "lk_clone_tp")]
                source = f"{choice.kind}:{choice.target}"
                att = self._keep(attach_probes(self, prog, ("clone", name), hooks, hook=source))
            except (AttachError, VerifierError, NotSupportedError) as e:
                if hook != "auto":
                    raise
                tried.append(f"{choice}: {e}")
                continue
            note = choice.reason + (f" (fell back after: {'; '.join(tried)})" if tried else "")
            return self._stream(att, payload=CLONE_DTYPE, frame=clone_frame(source), window=window,
                                poll_interval=poll_interval, note=note, name=name)
        raise NotSupportedError("no hook for process creation could be attached: " + "; ".join(tried),
                                feature="clone hook")

    def trace_syscall(self, syscall: str, *, pid: int | None = None, window: int = DEFAULT_WINDOW,
                      poll_interval: float = DEFAULT_POLL_INTERVAL, name: str | None = None,
                      ring_pages: int = DEFAULT_RING_PAGES) -> EventStream:
        """Stream one event per entry into ``syscall`` (any syscall tracepoint
        the kernel has; ``labkit.syscalls()`` lists them), with time, pid, tid,
        uid, comm, syscall, nr, arg0..arg5 and source."""
        self._check_open()
        fpid = check_pid(pid)
        check_window(window, poll_interval)
        _privileges.require("tracing")
        sc = _hooks.check_syscall(syscall)
        tp = f"syscalls:sys_enter_{sc}"
        prog = self.load("trace_syscall", defines={"LK_FILTER_PID": fpid, "LK_NARGS": _hooks.syscall_arg_count(sc),
                                                    "LK_RINGBUF_PAGES": _check_ring(ring_pages)})
        key = ("syscall", name or "trace_syscall", sc)
        att = self._keep(attach_probes(self, prog, key, [("tracepoint", tp, "lk_sys_enter")], hook=f"tracepoint:{tp}"))
        return self._stream(att, payload=SYSCALL_DTYPE, frame=syscall_frame(f"tracepoint:{tp}", sc),
                            window=window, poll_interval=poll_interval, note="syscall enter tracepoint",
                            name=f"trace_syscall({sc})")

    def _stream(self, att: Attachment, *, payload, frame, window, poll_interval, note, name) -> EventStream:
        try:
            s = EventStream(name=name, program=att.program, payload=payload, frame=frame, source=att.hook,
                            hook_note=note, window=window, poll_interval=poll_interval, owner=att)
        except BaseException:
            att.detach()
            raise
        att.stream = s
        return s

    # ------------------------------------------------------------ XDP and TC
    def attach_xdp(self, program: Program | str = "xdp_icmp_drop", iface: str | None = None, *,
                   netns: str | None = None, mode: str = "auto", force: bool = False, via: str = "auto",
                   fn: str | None = None, sample_every: int = 1, window: int = DEFAULT_WINDOW,
                   poll_interval: float = DEFAULT_POLL_INTERVAL, replace_foreign: bool = False) -> XdpAttachment:
        """Attach an XDP program to ``iface`` (in namespace ``netns``, None for the root one).

        ``mode``: "auto" (native, else generic: ``.mode`` says which), "native"
        or "generic". Attaching again on the same interface replaces the
        previous labkit program, in whichever slot it was. An interface the lab
        stands on is refused without ``force=True``, and the error says what it
        would cut off: the default route (on a VM: the SSH link), JupyterLab's
        address (the root namespace's lo), an SSH session. ``via``: "auto"/"link" (bpf_link: taken off when this
        process dies) or "netlink" (stays; recorded for ``labkit cleanup``).
        A sandbox's interface: ``iface=sb.target_iface, netns=sb.target_ns``.
        """
        return self._attach("attach_xdp", program, iface=iface, netns=netns, mode=mode, force=force, via=via,
                            fn=fn, sample_every=sample_every, window=window, poll_interval=poll_interval,
                            replace_foreign=replace_foreign)

    def attach_tc(self, program: Program | str = "tc_count", iface: str | None = None,
                  direction: str = "ingress", *, netns: str | None = None, fn: str | None = None,
                  via: str = "auto", force: bool = False) -> TcAttachment:
        """Attach a TC program (``struct __sk_buff *``, direct action: it returns
        TC_ACT_OK, TC_ACT_SHOT, ...) to ``direction`` ("ingress": what arrives,
        "egress": what leaves) of ``iface`` in namespace ``netns``.

        ``via``: "auto" (a tcx link where the kernel has tcx, 6.6+, else the
        clsact qdisc), "tcx", or "netlink" (a cls_bpf filter under the clsact
        qdisc, as on Debian 12's 6.1: recorded, removed on detach and reaped
        when this process dies). Attaching again on the same interface and
        direction replaces; an interface the lab stands on is refused without
        ``force=True``, as for attach_xdp. A sandbox: ``iface=sb.host_iface, netns=sb.host_ns``.
        """
        return self._attach("attach_tc", program, iface=iface, direction=direction, netns=netns, fn=fn, via=via,
                            force=force)

    def attach_cgroup(self, program: Program | str, cgroup: Cgroup | str | None = None, attach_type: str = "egress",
                      *, fn: str | None = None, force: bool = False) -> CgroupAttachment:
        """Attach a cgroup program to ``cgroup`` (a labkit.Cgroup, or a cgroup v2 directory) for every
        socket of a process in it or below it. ``attach_type``: "ingress" or "egress" (a cgroup_skb
        function, ``struct __sk_buff *``, on each packet received or sent: 1 lets it go, 0 drops it) or
        "connect4" (``struct bpf_sock_addr *``, on each IPv4 connect(): 0 refuses it with EPERM). Through a
        bpf_link (taken off when this process dies); the same program and function on the same cgroup
        again replaces. A cgroup labkit did not make (the root holds every process) needs ``force=True``
        (labkit.hooks.cgroup)."""
        return self._attach("attach_cgroup", program, cgroup=cgroup, attach_type=attach_type, fn=fn, force=force)

    # --------------------------------------- a program's own event buffers (lesson 06)
    def open_perf_buffer(self, program: Program, map_name: str = "events", *, pages: int = 8,
                         payload=None) -> PerfBufferReader:
        """Read ``program``'s ``BPF_PERF_OUTPUT(map_name)``: one buffer of
        ``pages`` pages (a power of two) per CPU. ``.read()`` returns the records
        that arrived (a DataFrame, with the ``cpu`` whose buffer delivered each),
        ``.lost`` what the kernel dropped because a CPU's buffer was full (it
        reports a loss with the next record that finds room). Closed by
        ``close()`` or this Lab's close; opening the same map again replaces it."""
        self._check_open()
        r = PerfBufferReader(program, map_name, pages=pages, payload=payload)
        self._readers = [x for x in self._readers if not x.closed] + [r]
        return r

    def open_ring_buffer(self, program: Program, map_name: str = "ring", *, payload=None) -> RingMapReader:
        """Read ``program``'s ``BPF_RINGBUF_OUTPUT(map_name, pages)``: one ring
        for all CPUs, records in reservation order (``.read()``: a DataFrame).
        A full ring refuses reservations in the program, which counts them."""
        self._check_open()
        r = RingMapReader(program, map_name, payload=payload)
        self._readers = [x for x in self._readers if not x.closed] + [r]
        return r

    # ------------------------------------------------- CO-RE objects (libbpf)
    def load_object(self, name_or_text: str, *, name: str | None = None, attach: bool = True,
                    rodata: dict | None = None, pin_root=None) -> CoreObject:
        """Compile CO-RE C (``#include "vmlinux.h"``, ``<bpf/bpf_helpers.h>``,
        ``SEC("tracepoint/...")`` functions, ``BPF_CORE_READ``) with clang
        into a BPF object (cached by content), load it through libbpf and,
        with ``attach=True``, attach each program where its ``SEC()`` says, as
        this Lab's attachments. ``name_or_text``: C text or a snippet
        (``bpf_snippets/<name>.bpf.c``); ``name``: what errors, the cache and
        the attachments call it (default: the snippet's name).

        ``rodata``: the object's read-only globals (``const volatile``) set
        before it is loaded, by name (``{"target_pid": 42}``); ``pin_root``: the
        bpffs directory where maps declared ``__uint(pinning,
        LIBBPF_PIN_BY_NAME)`` are pinned, or reused when a map is pinned there
        already (a ``labkit.PinDir``'s path; lesson 14); without it nothing
        is pinned.

        Loading a name again gives back the object that had it first (a re-run
        cell); ``close()`` and the process's death give everything back (each
        program sits on a bpf_link, which dies with its file descriptor).
        Read a map with ``obj.map_dataframe("counts")``; ``obj.programs[fn].id``
        is what ``bpftool prog show id N`` shows.

        Raises ArgumentError (no such snippet), CompileError (clang's
        diagnostics, lines counted in the text as written), VerifierError,
        NotSupportedError (a program type this kernel refuses), AttachError.
        """
        self._check_open()
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise ArgumentError(f"name must be a non-empty string (what errors call the object), got {name!r}")
        _privileges.require("tracing")
        found, text = resolve_core_source(name_or_text)
        name = name or (found[: -len(".bpf.c")] if found.endswith(".bpf.c") else found)
        obj = CoreObject(compile_core(text, name), name, text, rodata=rodata,
                         pin_root=getattr(pin_root, "path", pin_root))
        obj.on_close.append(lambda state: forget(obj))
        claim(obj, obj.close)
        self._objects = [o for o in self._objects if not o.closed] + [obj]
        if attach:
            try:
                for prog in obj.programs.values():
                    prog.attach()
                    att = CoreAttachment(key=("core", prog.section, f"{name}:{prog.name}"), target=prog.section,
                                         program=prog, lab=self, hook=prog.section, owns_program=False)
                    obj.on_close.insert(0, lambda state, a=att: a.detach(state))
                    claim(att, att.detach)
                    self._attachments.append(att)
            except BaseException:
                obj.close()
                raise
        return obj

    # ------------------------------------------------------------ ownership
    @property
    def attachments(self) -> list[Attachment]:
        """This Lab's attachments that are still attached."""
        return [a for a in self._attachments if a.attached]

    def detach_all(self) -> None:
        for a in list(self._attachments):
            a.detach()
        self._attachments.clear()

    def forget(self, attachment: Attachment) -> None:
        """Drop an attachment that was given back from this Lab's list
        (``Attachment.detach`` calls it: a re-run cell's old attachment is not kept)."""
        if attachment in self._attachments:
            self._attachments.remove(attachment)

    def close(self) -> None:
        """Detach everything this Lab attached and free its programs (idempotent)."""
        for r in self._readers:
            r.close()
        self._readers.clear()
        self.detach_all()
        for o in reversed(self._objects):
            o.close()
        for p in list(self._programs):
            p.close()
        self._programs.clear()
        _free_unreferenced()
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this Lab is closed; make a new one with labkit.Lab()")

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.attachments)} attached"
        return f"<labkit.Lab {state}: {', '.join(a.hook for a in self.attachments) or 'nothing attached'}>"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(a.kind)}</td><td>{html.escape(a.hook)}</td>"
                       f"<td>{html.escape(a.program.name)}</td></tr>" for a in self.attachments)
        return (f"<b>labkit.Lab</b> ({'closed' if self._closed else 'open'}) "
                f"<table><tr><th>kind</th><th>hook</th><th>program</th></tr>{rows}</table>")


#: the BCC modules of programs that nobody holds any more (queued by a finalizer, which
#: may run in any thread and at any allocation, so the freeing waits for a safe point)
_unreferenced: list = []


def _free_unreferenced() -> None:
    """Free the BCC module of every program that was dropped (its attachments were
    given back: they held it); one closed before it was dropped has nothing left to free."""
    while _unreferenced:
        free_module(_unreferenced.pop())


def _check_ring(pages) -> int:
    if not (isinstance(pages, int) and pages >= 1 and pages & (pages - 1) == 0):
        raise ArgumentError(f"ring_pages must be a power of two (1, 2, 4, ... pages of 4 KiB), got {pages!r}")
    return pages


def syscalls() -> list[str]:
    """The syscalls this kernel can trace (names for ``Lab.trace_syscall``)."""
    return _hooks.syscall_tracepoints()



