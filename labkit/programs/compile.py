"""Compiling and loading BPF C through BCC, with the kernel's words kept.

BCC prints clang's diagnostics and the verifier log on file descriptor 2 and
raises a bare ``Exception``; in a notebook fd 2 is the server's terminal, so the
student sees nothing useful. Here every compile and load runs with fd 2
captured, and failures become :class:`CompileError`, :class:`VerifierError`,
:class:`PrivilegeError` or :class:`NotSupportedError` with that text inside.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import difflib
import functools
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from labkit.programs import privileges as _privileges
from labkit._errors import ArgumentError, ClosedError, CompileError, NotSupportedError, VerifierError
from labkit._renamed import renamed_method

__all__ = [
    "PROGRAM_PREFIX",
    "REFERENCE_PREFIX",
    "Program",
    "SNIPPET_DIR",
    "capture_fd2",
    "compile_c",
    "first_error",
    "free_module",
    "load_function",
    "map_diagnostics",
    "map_verifier_log",
    "resolve_source",
]

SNIPPET_DIR = Path(__file__).resolve().parents[2] / "bpf_snippets"  # <repo>/labkit/programs/compile.py
REFERENCE_PREFIX = "solution_"  # the exercises' reference answers: never suggested, never accepted as answers
PROGRAM_PREFIX = "lk_"  # every labkit BPF function name starts with it (kernel keeps 15 chars)

_fd2_lock = threading.Lock()


@contextlib.contextmanager
def capture_fd2() -> Iterator[list[str]]:
    """Capture everything written to file descriptor 2 (C code included).

    Yields a list that holds the captured text once the block ends.
    """
    out: list[str] = []
    with _fd2_lock, tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            try:
                yield out
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


# ----------------------------------------------------------------- line mapping
_DIAG = re.compile(r"^(?P<file>/virtual/main\.c):(?P<line>\d+):(?P<col>\d+): (?P<kind>error|warning|note|fatal error): (?P<msg>.*)$")
_NOISE = ("modprobe: not found", "modprobe: FATAL")


def map_diagnostics(text: str, source: str, display_name: str) -> str:
    """Rewrite clang's ``/virtual/main.c:L:C`` locations so they point into
    ``source`` as the user wrote it, named ``display_name``.

    BCC rewrites the program before its second clang pass, which shifts line
    numbers. Clang prints the offending source line under each diagnostic; when
    that line is not what ``source`` has at L, the nearest line of ``source``
    with the same text is the real location.
    """
    src_lines = source.splitlines()
    lines = [ln for ln in text.splitlines() if not any(n in ln for n in _NOISE)]
    out: list[str] = []
    for i, line in enumerate(lines):
        m = _DIAG.match(line)
        if not m:
            out.append(line)
            continue
        lineno = int(m.group("line"))
        shown = lines[i + 1] if i + 1 < len(lines) else None
        lineno = _locate(src_lines, lineno, shown)
        out.append(f"{display_name}:{lineno}:{m.group('col')}: {m.group('kind')}: {m.group('msg')}")
    return "\n".join(out).strip()


def _locate(src_lines: Sequence[str], lineno: int, shown: str | None) -> int:
    if shown is None or not shown.strip():
        return lineno
    if 1 <= lineno <= len(src_lines) and src_lines[lineno - 1].rstrip() == shown.rstrip():
        return lineno
    matches = [n + 1 for n, s in enumerate(src_lines) if s.rstrip() == shown.rstrip()]
    if not matches:
        return lineno
    return min(matches, key=lambda n: abs(n - lineno))


_VLOG_LINE = re.compile(r"^; (?P<code>.*) @ main\.c:(?P<line>\d+)$")


def map_verifier_log(log: str, source: str, display_name: str) -> str:
    """Point the verifier log's ``; <C line> @ main.c:N`` notes (numbered in
    BCC's rewritten file) at the line of ``source`` that has that C text."""
    src = [ln.strip() for ln in source.splitlines()]
    out = []
    for line in log.splitlines():
        m = _VLOG_LINE.match(line)
        if m:
            code, n = m.group("code").strip(), int(m.group("line"))
            hits = [i + 1 for i, s in enumerate(src) if s == code]
            if hits:
                n = min(hits, key=lambda h: abs(h - n))
                line = f"; {m.group('code')} @ {display_name}:{n}"
        out.append(line)
    return "\n".join(out)


def first_error(diagnostics: str) -> str:
    for line in diagnostics.splitlines():
        if ": error: " in line or ": fatal error: " in line:
            return line
    return diagnostics.splitlines()[0] if diagnostics else ""


# ---------------------------------------------------------------------- Program
def resolve_source(name_or_text: str) -> tuple[str, str, Path | None]:
    """Return (display name, C text, path) for a snippet name, a path or C text."""
    if not isinstance(name_or_text, str) or not name_or_text.strip():
        raise ArgumentError("lab.load() needs a snippet name (see bpf_snippets/) or C source text, got "
                            f"{name_or_text!r}")
    s = name_or_text
    if "\n" in s or "{" in s or ";" in s:
        return "<text>.c", s, None
    p = Path(s)
    candidates = [p] if p.suffix == ".c" and p.exists() else []
    stem = p.name[:-2] if p.name.endswith(".c") else p.name
    candidates.append(SNIPPET_DIR / f"{stem}.c")
    for c in candidates:
        if c.exists():
            return c.name, c.read_text(), c
    known = sorted(x.stem for x in SNIPPET_DIR.glob("*.c") if not x.stem.startswith(REFERENCE_PREFIX))
    close = difflib.get_close_matches(stem, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ArgumentError(f"no BPF snippet named {stem!r} in {SNIPPET_DIR}.{hint} Known snippets: {', '.join(known)}.")


@dataclass
class _Compiled:
    bpf: object
    warnings: str
    usdt: object = None  # the bcc.USDT context compiled in (kept alive: its probes and semaphores live with it)


def _bcc():
    try:
        import bcc  # lazy: the distro's BCC may be missing; this turns that into a clear error
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise NotSupportedError(
            "BCC's Python module cannot be imported: run ./lab setup (installs python3-bpfcc and makes "
            ".venv with --system-site-packages), and use the 'labkit' Jupyter kernel.",
            feature="bcc",
        ) from e
    return bcc


@functools.lru_cache(maxsize=1)
def _bpf_class():
    bcc = _bcc()

    class DeferredAutoloadBPF(bcc.BPF):
        """BCC's BPF, except that compiling attaches nothing. BCC attaches every
        function named kprobe__*, tracepoint__*, ... when the module is built
        (its _trace_autoload); labkit attaches those itself afterwards, as
        attachments it owns (labkit.programs.probes, Lab.load)."""

        def _trace_autoload(self):
            pass

    return DeferredAutoloadBPF


@functools.lru_cache(maxsize=1)
def _usdt_class():
    bcc = _bcc()

    class DeferredUSDT(bcc.USDT):
        """BCC's USDT context, except that compiling attaches nothing: BCC attaches
        a context's probes when the module is built; labkit attaches them
        afterwards as an attachment it owns (kind "usdt", Lab.attach_usdt).
        ``where``, ``probe`` ("provider:name") and ``fn`` say what it was made for."""

        where: int | str = 0
        probe: str = ""
        fn: str = ""

        def attach_uprobes(self, bpf, attach_usdt_ignore_pid):
            pass

    return DeferredUSDT


def _usdt_context(usdt: tuple, display_name: str):
    """A USDT context for ``usdt`` = (pid or binary path, "provider:probe", C function)
    with the probe enabled (for a pid this sets the probe's semaphore in that process)."""
    try:
        where, probe, fn = usdt
    except (TypeError, ValueError):
        raise ArgumentError(f"usdt= is (pid or binary path, 'provider:probe', function), got {usdt!r}") from None
    if not isinstance(probe, str) or not probe:
        raise ArgumentError(f"a USDT probe is named 'provider:probe' (like 'python:function__entry'), got {probe!r}")
    if isinstance(where, bool) or not isinstance(where, (int, str)) or (isinstance(where, int) and where <= 0):
        raise ArgumentError(f"the USDT context needs a pid (a running process) or a binary path, got {where!r}")
    usdt_class = _usdt_class()
    kw = {"pid": where} if isinstance(where, int) else {"path": where}
    with capture_fd2() as cap:
        try:
            ctx = usdt_class(**kw)
        except Exception as e:  # bcc.USDTException
            raise ArgumentError(f"no USDT probes can be read from {where!r}: {e} "
                              f"{(cap[0] if cap else '').strip()}".strip()) from None
    known = sorted({f"{p.provider.decode()}:{p.name.decode()}" for p in ctx.enumerate_probes()})
    wanted = probe if ":" in probe else None
    if wanted is None:
        matches = [k for k in known if k.split(":", 1)[1] == probe]
        wanted = matches[0] if len(matches) == 1 else probe
    if wanted not in known:
        close = difflib.get_close_matches(wanted, known, n=5) or known[:8]
        raise ArgumentError(f"{where!r} has no USDT probe {probe!r}"
                          + (f"; close matches: {', '.join(close)}" if close else " (it has no USDT probes at all)")
                          + f" (for {display_name})")
    if not (isinstance(fn, str) and fn.isidentifier()):
        raise ArgumentError(f"the USDT probe's function must be a C function name, got {fn!r}")
    with capture_fd2():
        try:
            ctx.enable_probe(wanted, fn)
        except Exception as e:
            raise ArgumentError(f"cannot enable USDT probe {wanted} in {where!r}: {str(e).splitlines()[0]}") from None
    ctx.where, ctx.probe, ctx.fn = where, wanted, fn
    return ctx


def compile_c(text: str, display_name: str, cflags: Sequence[str], *, need: str = "tracing",
              usdt: tuple | None = None) -> _Compiled:
    """Compile C with BCC, turning failures into labkit errors.

    ``usdt``: (pid or binary path, "provider:probe", C function). BCC generates
    the code that reads a USDT probe's arguments (``bpf_usdt_readarg``) when the
    module is built, so the context is made here and kept on the result; the
    probe is attached later, as an attachment (probes kind "usdt")."""
    _privileges.require(need)
    bpf_class = _bpf_class()
    flags = [f"-I{SNIPPET_DIR}", *cflags]
    ctx = _usdt_context(usdt, display_name) if usdt is not None else None
    with capture_fd2() as captured:
        try:
            bpf = bpf_class(text=text.encode(), cflags=flags, usdt_contexts=[ctx] if ctx is not None else [])
            err = None
        except Exception as e:  # BCC raises a bare Exception
            bpf, err = None, e
    raw = captured[0] if captured else ""
    if err is not None:
        diags = map_diagnostics(raw, text, display_name)
        if "Unable to find kernel headers" in raw or "kconfig.h' file not found" in raw:
            raise NotSupportedError(
                "BCC cannot find kernel headers for this kernel: run ./lab setup, which installs the "
                "distro's headers (or links the generic ones at /lib/modules/$(uname -r)/build).",
                feature="kernel headers",
            ) from None
        if "Operation not permitted" in raw or "Need super-user" in str(err):
            raise _privileges.eperm_error(f"creating the maps of {display_name}", raw) from None
        if not diags:
            diags = str(err)
        raise CompileError(
            f"{display_name} does not compile: {first_error(diags)}",
            diagnostics=diags, source=text, name=display_name,
        ) from None
    return _Compiled(bpf=bpf, warnings=map_diagnostics(raw, text, display_name), usdt=ctx)


_VERIFIER_HINT = re.compile(r"^\s*\d+: \(|processed \d+ insns|R\d+ ", re.M)


def load_function(bpf, func: str, prog_type: int, display_name: str, source: str = "",
                  attach_type: int = -1) -> object:
    """``bpf.load_func`` with the verifier log captured into a VerifierError. ``attach_type``: the
    expected attach type some program types must be loaded with (a cgroup/connect4 program), -1 for none."""
    with capture_fd2() as captured:
        try:
            fn = bpf.load_func(func.encode(), prog_type, None, attach_type)
            err = None
        except Exception as e:
            fn, err = None, e
    raw = captured[0] if captured else ""
    if err is None:
        return fn
    msg = str(err)
    if msg.startswith("Unknown program"):
        raise ArgumentError(f"{display_name} has no function named {func!r}") from None
    if "Need super-user" in msg:
        raise _privileges.eperm_error(f"loading {func} from {display_name}", raw) from None
    if not _VERIFIER_HINT.search(raw):
        raw = _kernel_log(bpf, func, prog_type, attach_type) or raw
    log = map_verifier_log(raw.strip(), source, display_name) if source else raw.strip()
    cause = _verifier_cause(log) or msg
    raise VerifierError(
        f"the verifier rejected {func} ({display_name}): {cause}\n"
        f"--- last lines of the verifier log (full log in .log) ---\n" + "\n".join(log.splitlines()[-6:]),
        log=log, program=func,
    ) from None


_BCC_DEBUG_BPF = 0x2  # bcc.DEBUG_BPF: load_func asks the kernel for its log (log_level 1) from the start


def _kernel_log(bpf, func: str, prog_type: int, attach_type: int = -1) -> str:
    """Load ``func`` again with the verifier's log asked for up front, and
    return what was printed ("" when the load succeeds this time).

    libbcc asks for the log only after a load failed, and not at all on some
    errors: when the verifier answers E2BIG (6.18 builds do for "The sequence
    of 8193 jumps is too complex.", every kernel for "BPF program is too
    large") it prints only "Program too large (N insns), at most 4096 insns",
    a sentence about a limit the program never met. With BCC's ``DEBUG_BPF``
    the first load carries a log buffer, so the kernel's own words come back
    whatever the error."""
    saved = bpf.debug
    bpf.debug = saved | _BCC_DEBUG_BPF
    try:
        with capture_fd2() as captured:
            try:
                fn = bpf.load_func(func.encode(), prog_type, None, attach_type)
            except Exception:
                fn = None
    finally:
        bpf.debug = saved
    if fn is not None:  # it loaded this time (a transient refusal): keep nothing of it
        bpf.funcs.pop(func.encode(), None)
        with contextlib.suppress(Exception):
            os.close(fn.fd)
        return ""
    return captured[0] if captured else ""


def _verifier_cause(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("processed ", "bpf: Failed to load program", "verification time", "stack depth")):
            continue
        if re.match(r"^\d+: ", ln) or ln.startswith(("R0", "R1", "; ")):
            continue
        return ln
    return ""


def free_module(bpf) -> None:
    """Free a BCC module: detach what BCC attached, close its maps and programs,
    destroy its compiled LLVM module (idempotent), drop BCC's atexit hook for it;
    then hand the freed heap back to the system. A compile churns through tens of
    MB that the C allocator would otherwise keep: without the trim, a kernel that
    re-runs cells grows by that much before it levels off."""
    with capture_fd2():
        try:
            bpf.cleanup()
        finally:
            atexit.unregister(bpf.cleanup)
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's malloc_trim, or None under another C library."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


class Program:
    """A compiled BPF module: the source as written, the flags it was built with,
    and the BCC object that holds its maps. Programs are loaded and attached by
    a :class:`labkit.Lab`; ``close()`` releases the maps and loaded functions."""

    def __init__(self, name: str, source: str, cflags: Sequence[str], compiled: _Compiled, path: Path | None):
        self.name = name
        self.source = source
        self.cflags = tuple(cflags)
        self.path = path
        self.bpf = compiled.bpf
        self.warnings = compiled.warnings
        self.usdt = compiled.usdt  # the bcc.USDT context compiled in (Lab.load's usdt=), or None
        self.auto_attachments: list = []  # what Lab.load attached for BCC-named functions
        self._closed = False

    @property
    def functions(self) -> list[str]:
        from bcc import lib  # type: ignore  # lazy: see _bcc()

        mod = self.bpf.module
        return [lib.bpf_function_name(mod, i).decode() for i in range(lib.bpf_num_functions(mod))]

    def syscall_symbol(self, name: str) -> str:
        """The kernel symbol of a syscall's entry, as BCC names it (``sys_clone`` -> ``__x64_sys_clone`` on
        x86-64, ``__arm64_sys_clone`` on arm64)."""
        return self.bpf.fix_syscall_fnname(name.encode()).decode()

    def function_name(self, fn: str | None = None) -> str:
        """``fn`` if given (and the program has it), else the program's only
        function (an error names them all when there are several)."""
        fns = self.functions
        if fn is not None:
            if fn not in fns:
                raise ArgumentError(f"{self.name} has no function named {fn!r}; its functions: {', '.join(fns)} "
                                    "(say which one with fn=)")
            return fn
        if len(fns) != 1:
            raise ArgumentError(f"{self.name} has {len(fns)} functions ({', '.join(fns)}): say which one with fn=")
        return fns[0]

    def has_table(self, name: str) -> bool:
        """Whether the program declares a map called ``name``."""
        if self._closed:
            return False
        try:
            self.bpf[name.encode()]
        except KeyError:
            return False
        return True

    def load_function(self, func: str, prog_type: int, attach_type: int = -1):
        """Load one function of this program into the kernel as a program of
        ``prog_type`` (``bcc.BPF.XDP``, ...) and return BCC's handle (``.fd``);
        ``attach_type``: the expected attach type a kind needs at load (connect4).
        VerifierError if the verifier refuses it. Nothing is attached
        (``Lab.load`` compiles a whole program; this loads one function of it)."""
        self._check_open()
        return load_function(self.bpf, func, prog_type, self.name, self.source, attach_type)

    #: the old name, for one release (labkit._renamed)
    load = renamed_method("load", "load_function")

    def __getitem__(self, table: str):
        self._check_open()
        return self.bpf[table.encode() if isinstance(table, str) else table]

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"program {self.name} is closed (detached); load it again with lab.load()")

    def close(self) -> None:
        """Detach whatever BCC attached for this module and free its maps (idempotent)."""
        if self._closed:
            return
        for att in self.auto_attachments:  # they hold no program of their own: give them back first
            att.detach()
        self._closed = True
        try:
            free_module(self.bpf)
        finally:
            self.usdt = None  # BCC closes the context (and its semaphores) when it is dropped

    def __repr__(self) -> str:
        state = "closed" if self._closed else "loaded"
        return f"<labkit.Program {self.name} ({state}) functions={self.functions if not self._closed else '-'}>"
