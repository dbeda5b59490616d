"""What the kinds BCC attaches have in common: ProbeHook, TraceAttachment, attach_probes.

BCC attaches tracepoints, raw tracepoints, kprobes, fentry/fexit, LSM,
uprobes, USDT probes and perf events through perf events and file
descriptors it keeps in its BPF object, and closing the object takes them all
off. A :class:`TraceAttachment` holds functions of one program on such hooks,
each a Probe (kind, target, function) that its kind module attached and
detaches: a :class:`ProbeHook` says how, in two small methods (``bcc_attach``,
``bcc_detach``); loading the function first, capturing what BCC prints, and
turning a failure into an error that names the hook are done here, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from labkit._errors import AttachError, LabkitError, NotSupportedError
from labkit.attach import Attachment
from labkit.owners import claim, held
from labkit.hooks.protocol import Hook, hooks
from labkit.programs.compile import Program, capture_fd2
from labkit.programs.probes import Probe

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["ProbeHook", "TraceAttachment", "attach_probes", "load_for", "probe_hook"]


class ProbeHook(Hook):
    """A kind BCC attaches (see the module docstring). ``probe_kinds``: the kinds
    of Probe it attaches (a kprobe module attaches "kprobe" and "kretprobe");
    ``prog_type``: BCC's program type it loads the function as first
    (``bcc.BPF.<prog_type>``), "" when BCC's own attach call loads it;
    ``refused_means_unsupported``: a kind some kernels refuse outright (fentry,
    LSM), so a refusal is a NotSupportedError that says what to use instead."""

    probe_kinds: ClassVar[tuple[str, ...]] = ()
    prog_type: ClassVar[str] = ""
    refused_means_unsupported: ClassVar[bool] = False

    def attach_probe(self, prog: Program, kind: str, target: str, fn: str) -> None:
        """Load ``fn`` (VerifierError if refused) and attach it to ``kind`` ``target``.
        NotSupportedError where this kernel lacks the hook, AttachError otherwise."""
        self.check_probe(prog, kind, target, fn)
        if self.prog_type:
            # lazy: BCC comes from the distro; labkit imports without it (doctor says why)
            import bcc

            prog.load_function(fn, getattr(bcc.BPF, self.prog_type))
        with capture_fd2() as cap:
            try:
                self.bcc_attach(prog, kind, target, fn)
                err = None
            except LabkitError:
                raise
            except Exception as e:  # BCC raises a bare Exception
                err = e
        if err is not None:
            said = (cap[0].strip() if cap else "") or str(err)
            raise self.refused(prog, kind, target, fn, said) from None

    def detach_probe(self, prog: Program, kind: str, target: str, fn: str) -> None:
        """Take ``fn`` off its hook, leaving the program loaded (idempotent)."""
        if prog.closed:
            return  # closing the program took every probe off
        with capture_fd2():
            try:
                self.bcc_detach(prog, kind, target, fn)
            except Exception:  # BCC says "not attached": already off
                pass

    def check_probe(self, prog: Program, kind: str, target: str, fn: str) -> None:
        """Raise NotSupportedError, before loading, where this kernel lacks the hook."""

    def refused(self, prog: Program, kind: str, target: str, fn: str, said: str) -> LabkitError:
        """The error for an attach the kernel refused; ``said`` is what BCC or the kernel printed."""
        if self.refused_means_unsupported:
            return NotSupportedError(
                f"{fn} is a {kind} program ({target}) and this kernel would not attach it: {said}. "
                "Use a tracepoint or a kprobe instead (lesson 00's doctor lists the hooks that work here).",
                feature=kind)
        return AttachError(f"attaching {fn} ({prog.name}) to {kind} {target} failed: {said}", target=f"{kind}:{target}")

    def bcc_attach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        raise NotImplementedError

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        raise NotImplementedError


def probe_hook(kind: str) -> ProbeHook:
    """The kind module that attaches probes of ``kind`` ("kretprobe": the kprobe one)."""
    for h in hooks():
        if isinstance(h, ProbeHook) and kind in h.probe_kinds:
            return h
    known = sorted(k for h in hooks() if isinstance(h, ProbeHook) for k in h.probe_kinds)
    raise AttachError(f"unknown hook kind {kind!r} (one of {', '.join(known)})", target=kind)


class TraceAttachment(Attachment):
    """Functions of one program on hooks BCC attaches (tracepoints, kprobes, ...).
    ``probes`` lists them as (kind, target, function). An attachment that owns
    its program frees it on detach (which takes every probe off); one that does
    not (BCC-style ``tracepoint__*`` functions attached at load) takes its own
    probes off and leaves the program to its Lab."""

    kind = "trace"

    def __init__(self, *, probes: "list[Probe] | None" = None, **kw):
        super().__init__(**kw)
        self.probes: list[Probe] = list(probes or [])

    def detach_hook(self) -> None:
        if not self._owns_program:
            for kind, target, fn in reversed(self.probes):
                probe_hook(kind).detach_probe(self.program, kind, target, fn)


def attach_probes(lab: "Lab | None", prog: Program, key: tuple, probes: list[Probe], hook: str,
                  owns_program: bool = True) -> TraceAttachment:
    """Attach each (kind, target, function) of ``probes`` and register them as
    one TraceAttachment under ``key`` (what held the key is given back). The
    same probes of the same program already attached under ``key`` are not
    attached twice: that attachment is returned. On a failure what was attached
    comes off again (and the program is closed when the attachment would own it)."""
    existing = held(key)
    if (isinstance(existing, TraceAttachment) and existing.attached and existing.program is prog
            and existing.probes == probes):
        return existing  # already on that hook (attached at load, BCC-style): never twice
    att = TraceAttachment(key=key, target=hook, program=prog, lab=lab, hook=hook, owns_program=owns_program)
    try:
        for kind, target, fn in probes:
            probe_hook(kind).attach_probe(prog, kind, target, fn)
            att.probes.append((kind, target, fn))
    except BaseException:
        if owns_program:
            prog.close()
        else:
            att.detach_hook()
        raise
    claim(att, att.detach)
    return att


def load_for(lab: "Lab", program: Program | str, fn: str | None) -> tuple[Program, str]:
    """``program`` (loaded through ``lab`` when it is a snippet name or C text)
    and the function of it to attach; a program loaded here is closed again
    when it has no such function."""
    if isinstance(program, Program):
        return program, program.function_name(fn)
    prog = lab.load(program)
    try:
        return prog, prog.function_name(fn)
    except BaseException:
        prog.close()
        raise
