"""bpf_link_create through libbpf.so.1: the one helper every kind attached by a link uses (XDP, TC's tcx).

A bpf_link lives as long as its file descriptor: when the process that made
it dies, the kernel takes the program off. ``bpf_link_create(prog, target,
attach_type, opts)`` needs libbpf.so.1 (Debian's libbpf1); the target is an
ifindex for XDP and tcx (a cgroup fd for cgroup programs), resolved in the
namespace the link is made in, so the call runs there.
"""

from __future__ import annotations

import ctypes
import errno
import os

from labkit._errors import NotSupportedError
from labkit.net.netns import run_in_netns
from labkit.programs.libbpf import libbpf

__all__ = ["link_create", "means_unsupported"]


class _LinkCreateOpts(ctypes.Structure):
    # struct bpf_link_create_opts: only sz and flags are used; libbpf reads fields up to `sz`
    # and treats the rest as zero
    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


def link_create(prog_fd: int, target: int, attach_type: int, *, flags: int = 0, netns: str | None = None,
                feature: str = "bpf_link") -> int:
    """bpf_link_create(prog_fd, target, attach_type) with ``flags``, made in
    namespace ``netns`` (None: the root one); returns the link's fd. Raises
    OSError with the kernel's errno, NotSupportedError (``feature``) without libbpf."""
    lib = libbpf()
    if lib is None:
        raise NotSupportedError("libbpf.so.1 is not installed (apt-get install libbpf1)", feature=feature)
    opts = _LinkCreateOpts(sz=ctypes.sizeof(_LinkCreateOpts), flags=flags)

    def create() -> int:
        fd = lib.bpf_link_create(prog_fd, target, attach_type, ctypes.byref(opts))
        if fd < 0:
            err = -fd if fd != -1 else ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return fd

    return run_in_netns(netns, create)


def means_unsupported(err: int | None) -> bool:
    """Whether a bpf_link_create errno says "not in this mode or on this kernel" rather than a real failure."""
    return err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)
