"""Network namespaces by name: listing, creating, existence checks and running code inside one.

Python 3.11 has no ``os.setns``; ``setns(2)`` changes the namespace of the
calling *thread* only, so the work runs in a short-lived thread that enters the
namespace and then ends (the rest of the process never moves).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import threading
from typing import Callable, TypeVar

from labkit._errors import ArgumentError, AttachError

__all__ = [
    "NETNS_DIR",
    "create_netns",
    "list_netns",
    "netns_exists",
    "netns_path",
    "off_event_loop",
    "place",
    "require_netns",
    "run_in_netns",
]

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")
_libc = ctypes.CDLL(None, use_errno=True)


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_exists(name: str) -> bool:
    """Whether a named network namespace exists (``ip netns list`` shows it)."""
    return os.path.exists(os.path.join(NETNS_DIR, name))


def create_netns(name: str) -> None:
    """Create a named network namespace (/run/netns/<name>)."""
    # lazy: pyroute2 is only needed when namespaces are made or changed
    from pyroute2 import netns

    netns.create(name)


def place(iface: str, netns: str | None) -> str:
    """How labkit names an interface of a namespace: ``lksb-3fa9c1-tgt:lk3fa9c1t``, or ``eth0`` in the root one."""
    return f"{netns}:{iface}" if netns else iface


def netns_path(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ArgumentError(f"{name!r} is not a network namespace name")
    return os.path.join(NETNS_DIR, name)


def require_netns(name: str) -> str:
    path = netns_path(name)
    if not os.path.exists(path):
        have = list_netns()
        raise AttachError(
            f"no network namespace named {name!r} (ip netns list shows: {', '.join(have) or 'none'}); "
            "create it first, e.g. with labkit.Sandbox(), or pass netns=None for the root namespace",
            target=name)
    return path


def off_event_loop(fn: Callable[..., _T]) -> Callable[..., _T]:
    """Decorator: run ``fn`` in a short-lived thread when the calling thread has
    a running asyncio loop. pyroute2 0.9's synchronous API drives asyncio itself
    and fails there ("This event loop is already running"): a Jupyter kernel's
    main thread is such a thread, so every netlink call goes through this."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        box: dict[str, object] = {}

        def body() -> None:
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as e:  # re-raised in the caller
                box["error"] = e

        t = threading.Thread(target=body, name="labkit-netlink")
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]
    return wrapper


def run_in_netns(name: str | None, fn: Callable[[], _T]) -> _T:
    """Run ``fn()`` inside network namespace ``name`` (None: right here, or in
    a short-lived thread when this thread runs an asyncio loop: off_event_loop)."""
    if name is None:
        return off_event_loop(fn)()
    path = require_netns(name)
    box: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=body, name=f"labkit-netns-{name}")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
