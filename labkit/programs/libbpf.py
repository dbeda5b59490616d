"""libbpf.so.1 through ctypes: the one loader every floor shares.

:func:`libbpf` opens Debian's libbpf1 (libbpf 1.1) once and declares the
prototypes labkit calls: the low-level syscall wrappers (``bpf_link_create``,
``bpf_prog_get_fd_by_id``, map lookups) and the object API that loads a
CO-RE ELF file (``bpf_object__open_file``/``load``, programs, maps,
``bpf_program__attach`` -> ``bpf_link``), the read-only globals of an object
(``.rodata`` and its BTF), pinned objects (``bpf_obj_get``), test runs
(``bpf_prog_test_run_opts``) and helper probes (``libbpf_probe_bpf_helper``). :func:`captured_log` collects what
libbpf prints (its warnings carry the verifier's log) while a block runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Any, Iterator

__all__ = ["captured_log", "libbpf", "libbpf_error"]

_P = ctypes.c_void_p
_INT, _U32, _SZ, _STR = ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t, ctypes.c_char_p

_PROTOTYPES: dict[str, tuple[Any, list]] = {
    # syscall wrappers (bpf.h)
    "bpf_link_create": (_INT, [_INT, _INT, _INT, _P]),
    "bpf_prog_get_fd_by_id": (_INT, [_U32]),
    "bpf_obj_get_info_by_fd": (_INT, [_INT, _P, ctypes.POINTER(_U32)]),
    "bpf_map_lookup_elem": (_INT, [_INT, _P, _P]),
    "bpf_map_get_next_key": (_INT, [_INT, _P, _P]),
    "bpf_obj_get": (_INT, [_STR]),
    "bpf_obj_pin": (_INT, [_INT, _STR]),
    "bpf_prog_test_run_opts": (_INT, [_INT, _P]),
    # the object API (libbpf.h)
    "bpf_object__open_file": (_P, [_STR, _P]),
    "bpf_object__load": (_INT, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_program__name": (_STR, [_P]),
    "bpf_program__section_name": (_STR, [_P]),
    "bpf_program__fd": (_INT, [_P]),
    "bpf_program__type": (_INT, [_P]),
    "bpf_program__set_autoload": (_INT, [_P, ctypes.c_bool]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_link__destroy": (_INT, [_P]),
    "bpf_link__fd": (_INT, [_P]),
    "bpf_map__name": (_STR, [_P]),
    "bpf_map__fd": (_INT, [_P]),
    "bpf_map__type": (_INT, [_P]),
    "bpf_map__key_size": (_U32, [_P]),
    "bpf_map__value_size": (_U32, [_P]),
    "bpf_map__max_entries": (_U32, [_P]),
    "bpf_map__initial_value": (_P, [_P, ctypes.POINTER(_SZ)]),
    "bpf_map__set_initial_value": (_INT, [_P, _P, _SZ]),
    "bpf_map__is_pinned": (ctypes.c_bool, [_P]),
    "bpf_map__pin_path": (_STR, [_P]),
    "bpf_map__set_pin_path": (_INT, [_P, _STR]),
    # BTF (btf.h): the variables of a .rodata section, by name
    "bpf_object__btf": (_P, [_P]),
    "btf__find_by_name_kind": (ctypes.c_int32, [_P, _STR, _U32]),
    "btf__type_by_id": (_P, [_P, _U32]),
    "btf__name_by_offset": (_STR, [_P, _U32]),
    "libbpf_probe_bpf_helper": (_INT, [_INT, _INT, _P]),
    "libbpf_get_error": (ctypes.c_long, [_P]),
    "libbpf_num_possible_cpus": (_INT, []),
}

#: libbpf_print_fn_t: int (*)(enum libbpf_print_level level, const char *fmt, va_list args)
_PRINT_FN = ctypes.CFUNCTYPE(_INT, _INT, _STR, _P)

_libbpf: Any = None
_libc: Any = None
_lock = threading.RLock()
_sink: list[str] | None = None


def libbpf() -> Any:
    """libbpf.so.1 with the prototypes labkit uses, or None when it is not installed."""
    global _libbpf, _libc
    if _libbpf is None:
        try:
            lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        except OSError:
            lib = False
        else:
            for fn, (restype, argtypes) in _PROTOTYPES.items():
                f = getattr(lib, fn)
                f.restype, f.argtypes = restype, argtypes
            _libc = ctypes.CDLL(None)
            _libc.vsnprintf.argtypes = [ctypes.c_char_p, _SZ, _STR, _P]
            _libc.vsnprintf.restype = _INT
            lib.libbpf_set_print.argtypes = [_PRINT_FN]
            lib.libbpf_set_print.restype = _P
            lib.libbpf_set_print(_print)
        _libbpf = lib
    return _libbpf or None


@_PRINT_FN
def _print(level: int, fmt: bytes, args: int) -> int:
    sink = _sink
    if sink is None or level > 1:   # LIBBPF_WARN 0, LIBBPF_INFO 1, LIBBPF_DEBUG 2
        return 0
    buf = ctypes.create_string_buffer(8192)
    n = _libc.vsnprintf(buf, len(buf), fmt, args)
    sink.append(buf.value.decode("utf-8", "replace") if n >= 0 else "")
    return 0


@contextlib.contextmanager
def captured_log() -> Iterator[list[str]]:
    """What libbpf prints (warnings and info: the verifier's log on a failed
    load) while the block runs, as a list of strings; one block at a time."""
    global _sink
    with _lock:
        lib = libbpf()
        if lib is not None:
            # BCC links the same libbpf.so.1 and sets its print function to NULL whenever it
            # reads BTF for a compile: take it back for the length of this block
            lib.libbpf_set_print(_print)
        lines: list[str] = []
        _sink = lines
        try:
            yield lines
        finally:
            _sink = None


def libbpf_error(ptr: int | None) -> int:
    """The errno a libbpf constructor returned instead of an object (0: it is an object)."""
    lib = libbpf()
    if not ptr:
        return ctypes.get_errno() or 22
    err = lib.libbpf_get_error(ptr)
    return -err if err else 0
