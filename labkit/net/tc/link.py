"""tcx links through libbpf (ctypes): a TC program on an interface that the kernel takes off when its process dies.

tcx (kernel >= 6.6) gives each interface an ingress and an egress list of
BPF programs, attached by ``bpf_link_create(prog, ifindex, BPF_TCX_INGRESS or
BPF_TCX_EGRESS)``. Like an XDP bpf_link, the link lives as long as its file
descriptor. An older kernel (Debian 12's 6.1) answers EINVAL: there labkit
uses the clsact qdisc and a cls_bpf filter (labkit.net.tc.netlink).
"""

from __future__ import annotations

import ctypes
import errno
import os

from labkit._errors import NotSupportedError
from labkit.net.netns import run_in_netns
from labkit.net.xdp.link import libbpf

__all__ = ["DIRECTIONS", "TCX_ATTACH_TYPES", "tcx_create", "tcx_error_means_unsupported"]

#: Where a TC program sits on an interface.
DIRECTIONS = ("ingress", "egress")
#: enum bpf_attach_type: BPF_TCX_INGRESS, BPF_TCX_EGRESS (uapi/linux/bpf.h, kernel 6.6)
TCX_ATTACH_TYPES = {"ingress": 46, "egress": 47}


class _LinkCreateOpts(ctypes.Structure):
    # struct bpf_link_create_opts: sz and flags only (zero: append to the list); libbpf reads up to `sz`
    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


def tcx_create(prog_fd: int, ifindex: int, direction: str, netns: str | None) -> int:
    """bpf_link_create(prog, ifindex, BPF_TCX_<direction>) on an interface of
    namespace ``netns`` (None: the root one); returns the link fd. OSError with
    the kernel's errno (EINVAL on a kernel without tcx), NotSupportedError without libbpf."""
    lib = libbpf()
    if lib is None:
        raise NotSupportedError("libbpf.so.1 is not installed (apt-get install libbpf1)", feature="tcx")
    opts = _LinkCreateOpts(sz=ctypes.sizeof(_LinkCreateOpts), flags=0)

    def create() -> int:
        fd = lib.bpf_link_create(prog_fd, ifindex, TCX_ATTACH_TYPES[direction], ctypes.cast(
            ctypes.byref(opts), lib.bpf_link_create.argtypes[3]))
        if fd < 0:
            err = -fd if fd != -1 else ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return fd

    return run_in_netns(netns, create)


def tcx_error_means_unsupported(err: int) -> bool:
    """Whether a tcx bpf_link_create errno says "this kernel has no tcx" rather than a real failure."""
    return err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)
