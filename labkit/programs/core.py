"""CO-RE: C compiled once by clang into a BPF ELF object, loaded by libbpf.

    path = compile_core(text, "execs")          # clang -O2 -g -target bpf, cached by content
    obj = CoreObject(path, "execs", text)       # bpf_object__open_file + load (CO-RE relocations)
    obj.programs["lk_exec"].attach()            # bpf_program__attach -> a bpf_link
    obj.map_dataframe("execs")                  # the map, one row per entry

BCC compiles a program's C when it runs, against the running kernel's
headers; here clang compiles it once (``vmlinux.h``, dumped from the
kernel's BTF, gives the types) and records every field access it makes
(``BPF_CORE_READ``) as a relocation that libbpf resolves against the BTF of
whichever kernel loads it. Objects and ``vmlinux.h`` are cached per user
(``$XDG_CACHE_HOME/labkit/core``, else ``~/.cache/labkit/core``) by content.

Options of an object (lesson 14): ``rodata={"target_pid": 42}`` sets its
read-only globals (``const volatile`` variables, found by name in the
object's BTF) before it is loaded, as a skeleton's ``skel->rodata->x = v``
does, where BCC would take ``-D``; ``pin_root=DIR`` is where libbpf pins and
finds the maps declared with ``__uint(pinning, LIBBPF_PIN_BY_NAME)`` (a map
pinned there already is reused, not made again); without one nothing is
pinned (libbpf's default, the top of /sys/fs/bpf, is the machine's). ``prog.test_run(data)``
runs a program once on a packet (``BPF_PROG_TEST_RUN``), attached nowhere.

Clang's diagnostics and the verifier's ``@ file:line`` notes name the
program and count lines as the student wrote them (the source is compiled
after a ``#line 1 "<name>"``). A bpf_link lives as long as its file
descriptor: a process that dies takes its programs off their hooks.

Why this file is long: an object, its programs and its maps are the faces of
one libbpf object (a program's test run and a map's slots need the object
open; closing it ends them all), and the errors of its load are told apart
from libbpf's own words here, next to the load; what it is opened with
(read-only globals, a pin root) is labkit.programs.options.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from labkit._errors import ArgumentError, AttachError, ClosedError, CompileError, NotSupportedError, VerifierError
from labkit._renamed import renamed_method
from labkit.programs.compile import SNIPPET_DIR, first_error
from labkit.programs.libbpf import captured_log, libbpf, libbpf_error
from labkit.programs.options import OpenOpts, check_pin_root, check_rodata, set_rodata

__all__ = ["BTF_PATH", "CoreMap", "CoreObject", "CoreProgram", "PROG_ARRAY", "cache_dir", "compile_core",
           "has_helper", "jited_code", "tool", "object_id", "prog_test_run", "resolve_core_source", "toolchain_problems", "vmlinux_header"]

BTF_PATH = Path("/sys/kernel/btf/vmlinux")
CORE_SUFFIX = ".bpf.c"
_ARCH = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64", "s390x": "s390", "ppc64le": "powerpc",
         "riscv64": "riscv"}
_PERCPU_TYPES = {5, 6, 10}   # BPF_MAP_TYPE_PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH
PROG_ARRAY = 3               # BPF_MAP_TYPE_PROG_ARRAY: its values are programs (user space reads their ids)

class _TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (bpf.h)."""

    _fields_ = [("sz", ctypes.c_size_t), ("data_in", ctypes.c_void_p), ("data_out", ctypes.c_void_p),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_void_p), ("ctx_out", ctypes.c_void_p), ("ctx_size_in", ctypes.c_uint32),
                ("ctx_size_out", ctypes.c_uint32), ("retval", ctypes.c_uint32), ("repeat", ctypes.c_int),
                ("duration", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
                ("batch_size", ctypes.c_uint32)]


def prog_test_run(fd: int, data: bytes, repeat: int = 1) -> int:
    """Run the loaded program ``fd`` (a CO-RE one or BCC's) on ``data`` with BPF_PROG_TEST_RUN (libbpf's
    bpf_prog_test_run_opts, through the one prototype of labkit.programs.libbpf); its return value.
    OSError with the kernel's errno when it refuses."""
    buf = ctypes.create_string_buffer(data, len(data))
    out = ctypes.create_string_buffer(len(data) + 256)
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.addressof(buf), data_size_in=len(data),
                        data_out=ctypes.addressof(out), data_size_out=len(out), repeat=repeat)
    rc = libbpf().bpf_prog_test_run_opts(fd, ctypes.byref(opts))
    if rc != 0:
        err = -rc if rc < 0 else ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(opts.retval)


def has_helper(helper_id: int, prog_type: int = 5) -> bool:
    """Whether this kernel lets programs of ``prog_type`` (default: tracepoint) call helper ``helper_id``
    (enum bpf_func_id: 181 is bpf_loop, kernel 5.17), asked the way libbpf asks
    (``libbpf_probe_bpf_helper``: a tiny program loaded and thrown away)."""
    lib = libbpf()
    if lib is None:
        return False
    with captured_log():
        return lib.libbpf_probe_bpf_helper(prog_type, helper_id, None) == 1


def cache_dir() -> Path:
    """Where compiled objects and vmlinux.h are kept: per user, made on first use
    (a private directory under /tmp when the home directory is not writable)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = Path(base) / "labkit" / "core"
    try:
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    d = Path(tempfile.gettempdir()) / f"labkit-core-{os.getuid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def toolchain_problems() -> list[tuple[str, str]]:
    """What CO-RE needs here and is missing, as (problem, fix) pairs (empty: all there)."""
    out = []
    if shutil.which("clang") is None:
        out.append(("clang is not installed", "apt-get install clang"))
    if not Path("/usr/include/bpf/bpf_helpers.h").exists():
        out.append(("libbpf's headers are missing (/usr/include/bpf/bpf_helpers.h)", "apt-get install libbpf-dev"))
    if shutil.which("bpftool") is None and not os.path.exists("/usr/sbin/bpftool"):
        out.append(("bpftool is not installed", "apt-get install bpftool"))
    if libbpf() is None:
        out.append(("libbpf.so.1 is missing", "apt-get install libbpf1"))
    if not BTF_PATH.exists():
        out.append((f"the kernel has no BTF ({BTF_PATH})", "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y "
                                                            "(Debian's own kernels are)"))
    return out


def tool(name: str, package: str) -> str:
    """The path of tool ``name`` (PATH, else /usr/sbin); NotSupportedError naming the package that has it."""
    found = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if found is None:
        raise NotSupportedError(f"{name} is not installed (apt-get install {package})", feature=name)
    return found


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def vmlinux_header() -> Path:
    """``vmlinux.h``: every type of the running kernel, dumped from its BTF
    (``bpftool btf dump file /sys/kernel/btf/vmlinux format c``) into the
    cache, once per kernel (named by the BTF's hash)."""
    if not BTF_PATH.exists():
        raise NotSupportedError(f"this kernel has no BTF ({BTF_PATH} is missing; it needs CONFIG_DEBUG_INFO_BTF=y)",
                                feature="BTF")
    digest = hashlib.sha256(BTF_PATH.read_bytes()).hexdigest()[:16]
    header = cache_dir() / f"btf-{digest}" / "vmlinux.h"
    if not header.exists():
        header.parent.mkdir(exist_ok=True)
        out = subprocess.run([tool("bpftool", "bpftool"), "btf", "dump", "file", str(BTF_PATH), "format", "c"],
                             capture_output=True, timeout=120)
        if out.returncode != 0:
            raise NotSupportedError(f"bpftool could not dump {BTF_PATH}: {out.stderr.decode(errors='replace')[-300:]}",
                                    feature="BTF")
        _write_atomic(header, out.stdout)
    return header


def resolve_core_source(name_or_text: str) -> tuple[str, str]:
    """(display name, C text) for a CO-RE snippet (``bpf_snippets/<name>.bpf.c``), a path or C text."""
    if not isinstance(name_or_text, str) or not name_or_text.strip():
        raise ArgumentError(f"load_object needs CO-RE C text or a snippet name (bpf_snippets/*{CORE_SUFFIX}), "
                            f"got {name_or_text!r}")
    s = name_or_text
    if "\n" in s or "{" in s or ";" in s:
        return "<text>.bpf.c", s
    p = Path(s)
    stem = p.name[: -len(CORE_SUFFIX)] if p.name.endswith(CORE_SUFFIX) else p.name
    for c in ([p] if p.name.endswith(".c") else []) + [SNIPPET_DIR / f"{stem}{CORE_SUFFIX}"]:
        if c.exists():
            return c.name, c.read_text()
    known = sorted(x.name[: -len(CORE_SUFFIX)] for x in SNIPPET_DIR.glob(f"*{CORE_SUFFIX}")
                   if not x.name.startswith("solution_"))
    raise ArgumentError(f"no CO-RE snippet named {stem!r} (bpf_snippets/{stem}{CORE_SUFFIX}); "
                        f"known: {', '.join(known) or 'none'}")


def _cflags() -> list[str]:
    arch = _ARCH.get(platform.machine(), platform.machine())
    return ["-O2", "-g", "-target", "bpf", f"-D__TARGET_ARCH_{arch}", "-fno-color-diagnostics"]


def compile_core(text: str, name: str) -> Path:
    """Compile CO-RE C with clang into a BPF object in the cache (reused when the
    same text was compiled for the same kernel types); CompileError with
    clang's diagnostics, lines counted in ``text`` and the file called ``name``."""
    header = vmlinux_header()
    clang = tool("clang", "clang")
    flags = _cflags()
    key = hashlib.sha256("\0".join([text, name, str(header), *flags]).encode()).hexdigest()[:24]
    obj = cache_dir() / "obj" / f"{key}.o"
    if obj.exists():
        return obj
    obj.parent.mkdir(exist_ok=True)
    shown = name.replace('"', "'").replace("\\", "/")
    with tempfile.TemporaryDirectory(prefix="labkit-core-") as tmp:
        src = Path(tmp) / "prog.bpf.c"
        src.write_text(f'#line 1 "{shown}"\n{text}')
        out = Path(tmp) / "prog.o"
        res = subprocess.run([clang, *flags, "-I", str(header.parent), "-c", str(src), "-o", str(out)],
                             capture_output=True, text=True, timeout=300)
        if res.returncode != 0 or not out.exists():
            diag = "\n".join(ln for ln in res.stderr.replace(str(src), shown).splitlines()
                             if not ln.startswith(("clang: error: ", "clang-14: error: "))
                             or "linker" not in ln).strip()
            raise CompileError(f"{shown}: clang could not compile it: {first_error(diag)}",
                               diagnostics=diag, source=text, name=name)
        _write_atomic(obj, out.read_bytes())     # the temporary directory may be on another filesystem
    return obj


# ---------------------------------------------------------------- loaded objects
def object_id(fd: int) -> int:
    """The kernel id of a BPF program, map or link fd (struct bpf_*_info: type, then id), 0 if unknown."""
    info = (ctypes.c_uint32 * 64)()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    if libbpf().bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) != 0:
        return 0
    return int(info[1])


def jited_code(prog_id: int) -> bytes:
    """The machine code the JIT made of program ``prog_id`` (struct bpf_prog_info's
    jited_prog_insns; what ``bpftool prog dump jited`` disassembles with libbfd).
    Empty when the kernel does not show it (not root, kptr_restrict=2)."""
    lib = libbpf()
    fd = lib.bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        raise ArgumentError(f"no BPF program with id {prog_id} (bpftool prog show lists them)")
    try:
        info = (ctypes.c_uint32 * 64)()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        if lib.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) != 0:
            return b""
        n = int(info[4])                       # jited_prog_len (offset 16)
        if not n:
            return b""
        buf = ctypes.create_string_buffer(n)
        info2 = (ctypes.c_uint32 * 64)()
        info2[4] = n
        ctypes.c_uint64.from_buffer(info2, 24).value = ctypes.addressof(buf)   # jited_prog_insns
        size = ctypes.c_uint32(ctypes.sizeof(info2))
        if lib.bpf_obj_get_info_by_fd(fd, info2, ctypes.byref(size)) != 0:
            return b""
        return buf.raw[: min(n, int(info2[4]))]
    finally:
        os.close(fd)


class CoreProgram:
    """One program of a loaded object: ``name``, ``section`` (its ``SEC()``),
    ``id`` (what ``bpftool prog show id N`` shows); ``attach()`` makes a
    bpf_link, ``close()`` destroys it (the program stays loaded with its object)."""

    def __init__(self, obj: "CoreObject", ptr: int):
        lib = libbpf()
        self._obj, self._ptr = obj, ptr
        self.name = lib.bpf_program__name(ptr).decode()
        self.section = lib.bpf_program__section_name(ptr).decode()
        self.fd = lib.bpf_program__fd(ptr)
        self.type = lib.bpf_program__type(ptr)
        self.id = object_id(self.fd)
        self._link: int | None = None

    def test_run(self, data: bytes, repeat: int = 1) -> int:
        """Run the program once (``repeat`` times) on ``data`` — a packet, for XDP and TC programs — with
        BPF_PROG_TEST_RUN: attached nowhere, no interface, no traffic. Returns its return value (for XDP:
        0 XDP_ABORTED, 1 XDP_DROP, 2 XDP_PASS, 3 XDP_TX, 4 XDP_REDIRECT). A tail call it makes jumps as it
        would on a hook, and what it writes to maps stays."""
        if self._obj.closed:
            raise ClosedError(f"{self._obj.name}: the object is closed; load it again")
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise ArgumentError(f"test_run needs the packet as bytes, got {type(data).__name__}")
        try:
            return prog_test_run(self.fd, bytes(data), repeat)
        except OSError as e:
            raise NotSupportedError(f"{self._obj.name}: the kernel would not test-run {self.name} "
                                    f"(SEC(\"{self.section}\")): {e.strerror}; BPF_PROG_TEST_RUN takes XDP, "
                                    "TC, socket filter and raw tracepoint programs", feature="BPF_PROG_TEST_RUN") from None

    @property
    def attached(self) -> bool:
        return self._link is not None

    @property
    def link_id(self) -> int:
        """The kernel id of this program's bpf_link (``bpftool link show``), 0 when not attached, or when
        the kernel has no link for its kind (a tracepoint before 5.15: libbpf then holds the perf event
        the program is set on, and closing it detaches the program the same way)."""
        return object_id(libbpf().bpf_link__fd(self._link)) if self._link else 0

    def attach(self) -> None:
        """Attach where the program's ``SEC()`` says (libbpf's bpf_program__attach)."""
        if self._obj.closed:
            raise ClosedError(f"{self._obj.name}: the object is closed; load it again")
        if self._link is not None:
            return
        with captured_log() as log:
            link = libbpf().bpf_program__attach(self._ptr)
            err = libbpf_error(link)
        if err:
            why = " ".join(ln.strip() for ln in log if ln.strip())[-400:]
            hint = (" (fentry/fexit need the kernel's BPF trampoline, which this kernel refuses: "
                    'use SEC("tracepoint/category/event"), which works on every kernel)'
                    if self.section.startswith(("fentry/", "fexit/", "fmod_ret/")) else "")
            raise AttachError(f"{self._obj.name}: cannot attach {self.name} (SEC(\"{self.section}\")): "
                              f"{os.strerror(err)}{hint}" + (f"; libbpf says: {why}" if why else ""),
                              target=self.section, errno=err)
        self._link = link

    def detach(self) -> None:
        """Destroy the bpf_link: the program leaves its hook (idempotent)."""
        link, self._link = self._link, None
        if link:
            libbpf().bpf_link__destroy(link)

    #: the old name, for one release (labkit._renamed)
    close = renamed_method("close", "detach")

    @property
    def closed(self) -> bool:
        return self._link is None

    def __repr__(self) -> str:
        return (f"<labkit.CoreProgram {self.name} SEC(\"{self.section}\") id {self.id}: "
                f"{'attached' if self.attached else 'not attached'}>")


class CoreMap:
    """One map of a loaded object: ``name``, ``type`` (enum bpf_map_type),
    ``key_size``, ``value_size``, ``id`` (``bpftool map dump id N``)."""

    def __init__(self, ptr: int | None, *, fd: int | None = None):
        lib = libbpf()
        self.pin_path = ""
        if ptr is None:      # a map known by its fd alone (a pinned one): what the kernel says it is
            try:
                is_map = "map_type:" in Path(f"/proc/self/fdinfo/{fd}").read_text()
            except OSError:
                is_map = False
            if not is_map:       # (a program's or a link's info would be read as a map's)
                raise ArgumentError(f"fd {fd} is not a BPF map")
            info = (ctypes.c_uint32 * 32)()
            size = ctypes.c_uint32(ctypes.sizeof(info))
            if lib.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) != 0:
                raise ArgumentError(f"fd {fd} is not a BPF map")
            # struct bpf_map_info: type, id, key_size, value_size, max_entries, map_flags, name[16]
            self.type, self.id, self.key_size, self.value_size, self.max_entries = (int(x) for x in info[:5])
            self.name = bytes(info)[24:40].split(b"\0")[0].decode(errors="replace")
            self.fd = fd
            self._own_fd = True
            return
        self._own_fd = False
        self.name = lib.bpf_map__name(ptr).decode()
        self.fd = lib.bpf_map__fd(ptr)
        self.type = lib.bpf_map__type(ptr)
        self.key_size = lib.bpf_map__key_size(ptr)
        self.value_size = lib.bpf_map__value_size(ptr)
        self.max_entries = lib.bpf_map__max_entries(ptr)
        self.id = object_id(self.fd)
        if lib.bpf_map__is_pinned(ptr):
            self.pin_path = (lib.bpf_map__pin_path(ptr) or b"").decode()

    def close(self) -> None:
        """Close the file descriptor of a map opened by its pin (idempotent; an object's own maps close with it)."""
        fd, self._own_fd = (self.fd if self._own_fd else -1), False
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> "CoreMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def slots(self) -> dict[int, int]:
        """A prog array's filled slots: index -> the id of the program in it (what a tail call to that
        index jumps to); the kernel hands user space program ids, never the programs."""
        if self.type != PROG_ARRAY:
            raise ArgumentError(f"{self.name} is not a prog array (BPF_MAP_TYPE_PROG_ARRAY)")
        return {int.from_bytes(k, sys.byteorder): int.from_bytes(v[0], sys.byteorder) for k, v in self.items()}

    @property
    def percpu(self) -> bool:
        return self.type in _PERCPU_TYPES

    def items(self) -> list[tuple[bytes, list[bytes]]]:
        """Every (key, values) pair, read with bpf_map_get_next_key and
        bpf_map_lookup_elem; ``values`` has one entry per CPU for a per-CPU map."""
        lib = libbpf()
        ncpu = lib.libbpf_num_possible_cpus() if self.percpu else 1
        stride = (self.value_size + 7) // 8 * 8 if self.percpu else self.value_size
        key = ctypes.create_string_buffer(max(self.key_size, 1))
        nxt = ctypes.create_string_buffer(max(self.key_size, 1))
        val = ctypes.create_string_buffer(max(stride * ncpu, 1))
        out = []
        prev = None
        for _ in range(max(self.max_entries, 1) + 1):
            if lib.bpf_map_get_next_key(self.fd, prev, nxt) != 0:
                break
            ctypes.memmove(key, nxt, self.key_size)
            prev = key
            if lib.bpf_map_lookup_elem(self.fd, key, val) == 0:
                raw = val.raw
                out.append((key.raw[: self.key_size], [raw[i * stride: i * stride + self.value_size]
                                                       for i in range(ncpu)]))
        return out

    def dataframe(self) -> pd.DataFrame:
        """One row per entry: ``key`` and ``value`` as unsigned integers when they
        are 1, 2, 4 or 8 bytes, text when they hold a NUL-terminated string, else
        their bytes in hex; per-CPU values summed."""
        def num(b: bytes):
            if len(b) in (1, 2, 4, 8):
                return int.from_bytes(b, "little")
            text, _, rest = b.partition(b"\0")
            if text and text.isascii() and text.decode().isprintable() and not rest.strip(b"\0"):
                return text.decode()          # a char array (a comm, a path): its text
            return b.hex()

        rows = []
        for k, vals in self.items():
            nums = [num(v) for v in vals]
            value = sum(nums) if all(isinstance(n, int) for n in nums) else nums[0]
            rows.append({"key": num(k), "value": value})
        df = pd.DataFrame(rows, columns=["key", "value"])
        if not df.empty and all(isinstance(v, int) for v in df["key"]):
            df = df.sort_values("key", ignore_index=True)
        return df

    def __repr__(self) -> str:
        return f"<labkit.CoreMap {self.name} type {self.type} id {self.id}: {self.key_size}B -> {self.value_size}B>"


def _no_pins(obj_ptr: int) -> None:
    """Unset the pin path libbpf gave each map declared LIBBPF_PIN_BY_NAME (its default root: /sys/fs/bpf)."""
    lib = libbpf()
    m = None
    while True:
        m = lib.bpf_object__next_map(obj_ptr, m)
        if not m:
            return
        if lib.bpf_map__pin_path(m):
            lib.bpf_map__set_pin_path(m, None)


class CoreObject:
    """A BPF ELF object opened and loaded by libbpf (CO-RE relocations applied
    against this kernel's BTF): ``programs`` and ``maps`` by name, ``source``,
    ``path`` (the cached object file). ``close()`` destroys its links and
    frees it (idempotent); ``on_close`` callbacks run first. ``close(state)``
    ends it in ``state`` ("replaced", "closed", ...): it can be claimed in
    labkit's registry (labkit.owners) under ``key`` with ``close`` as its verb."""

    def __init__(self, path: Path, name: str, source: str, *, rodata: dict | None = None,
                 pin_root: str | Path | None = None):
        lib = libbpf()
        if lib is None:
            raise NotSupportedError("libbpf.so.1 is not installed (apt-get install libbpf1)", feature="libbpf")
        rodata = check_rodata(rodata)
        pin_root = check_pin_root(pin_root)
        self.name, self.source, self.path = name, source, Path(path)
        self.pin_root = pin_root
        self.programs: dict[str, CoreProgram] = {}
        self.maps: dict[str, CoreMap] = {}
        self.on_close: list[Callable[[str], None]] = []
        self.key: tuple = ("core object", name)
        self.state = "loaded"
        self._ptr: int | None = None
        opts = OpenOpts(sz=ctypes.sizeof(OpenOpts), pin_root_path=str(pin_root).encode() if pin_root else None)
        with captured_log() as log:
            ptr = lib.bpf_object__open_file(str(path).encode(), ctypes.byref(opts))
            err = libbpf_error(ptr)
            if err:
                raise CompileError(f"{name}: libbpf cannot open the object: {os.strerror(err)}",
                                   diagnostics="\n".join(log).strip(), source=source, name=name)
            self._ptr = ptr
            sections, p = {}, None
            while True:
                p = lib.bpf_object__next_program(ptr, p)
                if not p:
                    break
                sections[lib.bpf_program__name(p).decode()] = lib.bpf_program__section_name(p).decode()
            try:
                if pin_root is None:     # libbpf would pin at the top of /sys/fs/bpf, the machine's: nothing pinned
                    _no_pins(ptr)
                if rodata:
                    set_rodata(ptr, name, rodata)
            except BaseException:
                lib.bpf_object__close(ptr)
                self._ptr = None
                raise
            rc = lib.bpf_object__load(ptr)
        if rc != 0:
            text = "".join(log)
            lib.bpf_object__close(ptr)
            self._ptr = None
            raise self._load_error(-rc if rc < 0 else _errno.EINVAL, text, sections)
        p = None
        while True:
            p = lib.bpf_object__next_program(ptr, p)
            if not p:
                break
            prog = CoreProgram(self, p)
            self.programs[prog.name] = prog
        m = None
        while True:
            m = lib.bpf_object__next_map(ptr, m)
            if not m:
                break
            cm = CoreMap(m)
            if not cm.name.startswith("."):      # .rodata, .bss: the object's globals
                self.maps[cm.name] = cm

    def _load_error(self, err: int, log: str, sections: dict[str, str]) -> Exception:
        failed = re.findall(r"prog '([^']+)': (?:(?:BPF program )?load failed|failed to load|-- BEGIN PROG LOAD LOG)",
                            log)
        # libbpf names the program in several lines; with one program in the object it can only be that one
        prog = failed[0] if failed else (next(iter(sections)) if len(sections) == 1 else "")
        sec = sections.get(prog, "")
        body = re.search(r"-- BEGIN PROG LOAD LOG --\n(.*?)-- END PROG LOAD LOG --", log, re.S)
        vlog = body.group(1).strip() if body else ""
        if vlog:
            last = [ln for ln in vlog.splitlines() if ln.strip() and not ln.startswith(("processed ", "verification time"))]
            cause = next((ln for ln in reversed(last) if not ln.startswith(("(", ";"))), last[-1] if last else "")
            return VerifierError(f"{self.name}: the verifier rejected {prog or 'a program'}: {cause}\n"
                                 + "\n".join(last[-12:]), log=vlog, program=prog)
        pin = re.search(r"couldn't reuse pinned map at '([^']+)'", log)
        if pin:
            return AttachError(f"{self.name}: a map of the object is declared with LIBBPF_PIN_BY_NAME, and the map "
                               f"pinned at {pin.group(1)} does not match its definition (type, key size, value "
                               "size, max_entries and flags must all be the same): libbpf reuses a pinned map only "
                               "then. Remove the pin (rm) or declare the map as it was pinned", target=pin.group(1),
                               errno=err)
        slot = re.search(r"map '([^']+)': failed to initialize slot \[(\d+)\] to prog '([^']+)'", log)
        if slot:
            m, i, p = slot.groups()
            types = {s_.split("/", 1)[0] for s_ in sections.values()}
            return AttachError(f"{self.name}: the kernel refused to put program {p} (SEC(\"{sections.get(p, '')}\")) "
                               f"in slot {i} of the prog array {m}: {os.strerror(err)}"
                               + (". A prog array holds programs of one type only, the type of the programs that "
                                  f"tail-call through it: this object mixes {', '.join(sorted(types))}"
                                  if len(types) > 1 else ""), target=f"{m}[{i}]", errno=err)
        missing = re.search(r"(?:prog '([^']+)': )?failed to find kernel BTF type ID of '([^']+)'", log)
        if missing and missing.group(1):
            prog, sec = missing.group(1), sections.get(missing.group(1), sec)
        if missing or err == _errno.ESRCH:
            what = f"no function {missing.group(2)!r}" if missing else "not the function it names"
            return NotSupportedError(f"{self.name}: {prog or 'a program'}"
                                     + (f' (SEC("{sec}"))' if sec else "")
                                     + f" cannot be loaded: this kernel's BTF has {what} (inlined, renamed or "
                                     'static and dropped); SEC("tracepoint/category/event") works on every kernel',
                                     feature=sec.split("/", 1)[0] if sec else "BTF function")
        if err in (_errno.EPERM, 524, _errno.EOPNOTSUPP, _errno.EINVAL):    # 524: the kernel's ENOTSUPP
            kind = sec.split("/", 1)[0] if sec else "that kind of program"
            return NotSupportedError(f"{self.name}: the kernel refused to load {prog or 'the object'}"
                                     + (f' (SEC("{sec}"))' if sec else "")
                                     + f" before the verifier ran ({os.strerror(err)}): this kernel does not "
                                     f'allow {kind} programs here; SEC("tracepoint/category/event") works on '
                                     "every kernel" + (f"\nlibbpf says: {log.strip()[-600:]}" if log.strip() else ""),
                                     feature=kind)
        return VerifierError(f"{self.name}: libbpf could not load it: {os.strerror(err)}\n{log.strip()[-800:]}",
                             log=log, program=prog)

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def attached_programs(self) -> list[CoreProgram]:
        return [p for p in self.programs.values() if p.attached]

    def map(self, name: str) -> CoreMap:
        if self.closed:
            raise ClosedError(f"{self.name}: the object is closed (re-run or given back); load it again")
        if name not in self.maps:
            raise ArgumentError(f"{self.name} has no map called {name!r}; its maps: "
                                f"{', '.join(self.maps) or 'none'}")
        return self.maps[name]

    def map_dataframe(self, name: str) -> pd.DataFrame:
        """The map ``name`` as a DataFrame (:meth:`CoreMap.dataframe`)."""
        return self.map(name).dataframe()

    def close(self, state: str = "closed") -> None:
        """Run ``on_close``, destroy every link, free the programs and maps (idempotent)."""
        if self._ptr is None:
            return
        self.state = state
        callbacks, self.on_close = self.on_close, []
        for cb in callbacks:
            try:
                cb(state)
            except Exception:
                pass
        for p in self.programs.values():
            p.detach()
        ptr, self._ptr = self._ptr, None
        libbpf().bpf_object__close(ptr)

    def __repr__(self) -> str:
        state = self.state if self.closed else f"programs {', '.join(self.programs)}; maps {', '.join(self.maps)}"
        return f"<labkit.CoreObject {self.name}: {state}>"

    #: the old name, for one release (labkit._renamed)
    give_back = renamed_method("give_back", "close")
