"""labkit: an interactive eBPF lab on BCC that owns, and gives back, every bit
of kernel state it creates.

    import labkit
    with labkit.Lab() as lab:
        s = lab.trace_clone()
        s.to_dataframe()
"""

from labkit.programs.compile import Program
from labkit._errors import (
    ArgumentError,
    AttachError,
    BusyError,
    ClosedError,
    CompileError,
    LabkitError,
    NotSupportedError,
    PrivilegeError,
    ProgramKindError,
    SandboxError,
    VerifierError,
)
from labkit.commands.doctor import doctor
from labkit.attach import Attachment, close_all, detach_all, live_attachments
from labkit.hooks.cgroup import Cgroup, CgroupAttachment
from labkit.hooks.probe import TraceAttachment
from labkit.hooks.tc import TcAttachment
from labkit.hooks.xdp import XdpAttachment
from labkit.lab import Lab, syscalls
from labkit.programs.app import App, build_app
from labkit.programs.pins import PinDir, pinned_map
from labkit.net.sandbox import Sandbox
from labkit.net.traffic import PingResult, UdpResult
from labkit.events.stream import EventStream
from labkit.net.interfaces import xdp_interfaces
from labkit.views.cellmagic import register as _register_cell_magic
from labkit.views.display import ipython as _ipython
from labkit.net.xdp.devmap import devmap_set
from labkit.views import (
    FirewallControl,
    LivePanel,
    PanelSnapshot,
    SyscallPicker,
    XdpControl,
    close_panels,
    flame_graph,
    fold,
    live,
    live_panels,
    map_dataframe,
    read_trace_pipe,
    stack_dataframe,
    stack_frames,
)

__version__ = "0.1.0"


def load_ipython_extension(shell) -> None:
    """``%load_ext labkit``: the ``%%bpf`` cell magic (also registered by importing labkit in IPython)."""
    _register_cell_magic(shell)


if _ipython() is not None:  # inside a notebook: %%bpf is ready after `import labkit`
    _register_cell_magic(_ipython())

__all__ = sorted([
    "App",
    "ArgumentError",
    "AttachError",
    "BusyError",
    "Attachment",
    "Cgroup",
    "CgroupAttachment",
    "ClosedError",
    "CompileError",
    "EventStream",
    "FirewallControl",
    "Lab",
    "LabkitError",
    "LivePanel",
    "NotSupportedError",
    "PanelSnapshot",
    "PinDir",
    "PrivilegeError",
    "ProgramKindError",
    "PingResult",
    "Program",
    "Sandbox",
    "SandboxError",
    "SyscallPicker",
    "TcAttachment",
    "TraceAttachment",
    "UdpResult",
    "VerifierError",
    "XdpAttachment",
    "XdpControl",
    "build_app",
    "close_all",
    "close_panels",
    "detach_all",
    "devmap_set",
    "doctor",
    "flame_graph",
    "fold",
    "live",
    "live_attachments",
    "live_panels",
    "load_ipython_extension",
    "map_dataframe",
    "pinned_map",
    "read_trace_pipe",
    "stack_dataframe",
    "stack_frames",
    "syscalls",
    "xdp_interfaces",
])
