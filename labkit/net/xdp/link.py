"""XDP bpf_links through libbpf (taken off when their process dies) and program names.

A bpf_link lives as long as its file descriptor: when the process that made it
dies, the kernel detaches the program. ``bpf_link_create`` needs kernel >= 5.9
and libbpf.so.1 (Debian's libbpf1), loaded by labkit.programs.libbpf (``libbpf``
is importable from here too).
"""

from __future__ import annotations

import ctypes
import errno
import os
from labkit._errors import NotSupportedError
from labkit.net.netns import run_in_netns
from labkit.programs.libbpf import libbpf

__all__ = [
    "MODE_FLAGS",
    "PREFIX",
    "libbpf",
    "link_create",
    "link_error_means_unsupported",
    "prog_name",
]

BPF_XDP = 37                      # enum bpf_attach_type
XDP_FLAGS_SKB_MODE = 2
XDP_FLAGS_DRV_MODE = 4
#: The attach flag of each XDP slot: native (driver) and generic (skb) are separate slots.
MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE}
#: Every labkit program name starts with this, so leftovers are recognisable.
PREFIX = "lk_"


class _LinkCreateOpts(ctypes.Structure):
    # struct bpf_link_create_opts: only sz and flags are used; libbpf reads
    # fields up to `sz` and treats the rest as zero
    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


def link_create(prog_fd: int, ifindex: int, mode: str, netns: str | None) -> int:
    """bpf_link_create(prog, ifindex, BPF_XDP) in ``mode``'s slot of an interface
    of namespace ``netns`` (None: the root one); returns the link fd. Raises
    OSError with the kernel's errno, NotSupportedError without libbpf."""
    lib = libbpf()
    if lib is None:
        raise NotSupportedError("libbpf.so.1 is not installed (apt-get install libbpf1)", feature="bpf_link")
    opts = _LinkCreateOpts(sz=ctypes.sizeof(_LinkCreateOpts), flags=MODE_FLAGS[mode])

    def create() -> int:
        fd = lib.bpf_link_create(prog_fd, ifindex, BPF_XDP, ctypes.byref(opts))
        if fd < 0:
            err = -fd if fd != -1 else ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return fd

    return run_in_netns(netns, create)


def link_error_means_unsupported(err: int) -> bool:
    """Whether a bpf_link_create errno says "not in this mode/kernel" rather than a real failure."""
    return err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)


def prog_name(prog_id: int) -> str:
    """The name (kernel keeps 15 characters) of a loaded BPF program, by id."""
    lib = libbpf()
    if lib is None or not prog_id:
        return ""
    fd = lib.bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return ""
    try:
        info = (ctypes.c_uint8 * 256)()
        size = ctypes.c_uint32(256)
        if lib.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) != 0:
            return ""
        raw = bytes(info[64:80])  # struct bpf_prog_info.name
        return raw.split(b"\0", 1)[0].decode("ascii", "replace")
    finally:
        os.close(fd)
