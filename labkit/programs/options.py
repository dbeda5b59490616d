"""What a CO-RE object is opened with (labkit.programs.core): its read-only globals and its pin root.

Read-only globals are the ``const volatile`` variables of an object: clang puts them in its ``.rodata``
section, which libbpf makes a one-entry array map and freezes at load (the verifier then knows their values).
:func:`set_rodata` writes them by name between open and load, as a skeleton's ``skel->rodata->x = v``
does: the object's BTF (its ``.rodata`` DATASEC) says where each one is and how wide. The pin root is a
directory of the BPF filesystem (:func:`fs_type` says "bpf") where libbpf pins, and finds again, the maps
declared ``__uint(pinning, LIBBPF_PIN_BY_NAME)``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from labkit._errors import ArgumentError
from labkit.programs.libbpf import libbpf

__all__ = ["OpenOpts", "check_pin_root", "check_rodata", "fs_type", "rodata_vars", "set_rodata"]

_BTF_KIND_DATASEC = 15


class OpenOpts(ctypes.Structure):
    """struct bpf_object_open_opts (libbpf.h, libbpf 1.1), up to the fields labkit sets."""

    _fields_ = [("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p), ("relaxed_maps", ctypes.c_bool),
                ("pin_root_path", ctypes.c_char_p), ("_stub", ctypes.c_uint32), ("kconfig", ctypes.c_char_p),
                ("btf_custom_path", ctypes.c_char_p), ("kernel_log_buf", ctypes.c_char_p),
                ("kernel_log_size", ctypes.c_size_t), ("kernel_log_level", ctypes.c_uint32)]


def check_rodata(rodata) -> dict:
    if rodata is None:
        return {}
    if not isinstance(rodata, dict) or not all(isinstance(k, str) and k.isidentifier() for k in rodata):
        raise ArgumentError(f"rodata must be a dict of C variable names to numbers ({{'target_pid': 42}}), "
                            f"got {rodata!r}")
    for k, v in rodata.items():
        if not isinstance(v, int):
            raise ArgumentError(f"rodata[{k!r}] must be an int (a const volatile number), got {v!r}")
    return dict(rodata)


def check_pin_root(pin_root) -> Path | None:
    if pin_root is None:
        return None
    if not isinstance(pin_root, (str, Path)) or not str(pin_root).strip():
        raise ArgumentError(f"pin_root must be a directory of the BPF filesystem (/sys/fs/bpf/...), got {pin_root!r}")
    p = Path(pin_root)
    if not p.is_dir():
        raise ArgumentError(f"pin_root {p} is not a directory: make it in the BPF filesystem first "
                            "(labkit.PinDir makes one of the lab's own)")
    if fs_type(p) != "bpf":
        raise ArgumentError(f"pin_root {p} is not on the BPF filesystem (bpffs, mounted at /sys/fs/bpf): maps "
                            "can only be pinned there (labkit.PinDir makes a directory of the lab's own)")
    return p


def fs_type(path: Path) -> str:
    """The type of the filesystem ``path`` is on, from /proc/self/mountinfo (the longest mount point above it)."""
    best, kind = "", ""
    real = os.path.realpath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mnt = fields[4].replace("\\040", " ")
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, kind = mnt, right.split()[0]
    return kind


def rodata_vars(lib, obj_ptr: int) -> dict[str, tuple[int, int]]:
    """The read-only globals of an opened object: name -> (offset, size) in its .rodata, from its BTF."""
    btf = lib.bpf_object__btf(obj_ptr)
    if not btf:
        return {}
    sec = lib.btf__find_by_name_kind(btf, b".rodata", _BTF_KIND_DATASEC)
    if sec < 0:
        return {}
    t = lib.btf__type_by_id(btf, sec)
    _name_off, info, _size = (ctypes.c_uint32 * 3).from_address(t)
    out = {}
    for i in range(info & 0xFFFF):                 # struct btf_var_secinfo {type, offset, size} after the type
        vtype, offset, size = (ctypes.c_uint32 * 3).from_address(t + 12 + 12 * i)
        var = lib.btf__type_by_id(btf, vtype)
        vname = lib.btf__name_by_offset(btf, ctypes.c_uint32.from_address(var).value)
        if vname:
            out[vname.decode()] = (int(offset), int(size))
    return out


def set_rodata(obj_ptr: int, name: str, values: dict) -> None:
    """Write ``values`` into the opened object's .rodata (before load: the kernel freezes it at load)."""
    lib = libbpf()
    found = rodata_vars(lib, obj_ptr)
    unknown = [k for k in values if k not in found]
    if unknown:
        raise ArgumentError(f"{name} has no read-only global {', '.join(map(repr, unknown))}: its read-only globals "
                            f"(const volatile variables) are {', '.join(sorted(found)) or 'none'}")
    m = None
    while True:
        m = lib.bpf_object__next_map(obj_ptr, m)
        if not m:
            break
        if lib.bpf_map__name(m).decode().endswith(".rodata"):
            break
    size = ctypes.c_size_t(0)
    cur = lib.bpf_map__initial_value(m, ctypes.byref(size)) if m else None
    if not cur:
        raise ArgumentError(f"{name} has no .rodata to set")
    data = bytearray(ctypes.string_at(cur, size.value))
    for k, v in values.items():
        offset, width = found[k]
        try:
            data[offset:offset + width] = int(v).to_bytes(width, sys.byteorder, signed=v < 0)
        except OverflowError:
            raise ArgumentError(f"rodata[{k!r}] = {v} does not fit in its {width} bytes") from None
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    if lib.bpf_map__set_initial_value(m, buf, len(data)) != 0:
        raise ArgumentError(f"{name}: libbpf would not set the read-only globals")
