"""labkit: an interactive eBPF lab on BCC that owns, and gives back, every bit
of kernel state it creates.

    import labkit
    with labkit.Lab() as lab:
        s = lab.trace_clone()
        s.to_dataframe()
"""

from labkit.programs.compile import Program
from labkit._errors import (
    AttachError,
    CompileError,
    LabkitError,
    NotSupportedError,
    PrivilegeError,
    SandboxError,
    VerifierError,
)
from labkit.commands.doctor import doctor
from labkit.attach import Attachment, TraceAttachment, close_all, live_attachments
from labkit.lab import Lab, syscalls
from labkit.net.xdp import XdpAttachment
from labkit.net.sandbox import Sandbox
from labkit.net.traffic import PingResult, UdpResult
from labkit.events.stream import EventStream
from labkit.views.live import (
    LivePanel,
    PanelSnapshot,
    SyscallPicker,
    XdpControl,
    close_panels,
    live,
    live_panels,
    map_dataframe,
    read_trace_pipe,
    xdp_interfaces,
)

__version__ = "0.1.0"

__all__ = sorted([
    "AttachError",
    "Attachment",
    "CompileError",
    "EventStream",
    "Lab",
    "LabkitError",
    "LivePanel",
    "NotSupportedError",
    "PanelSnapshot",
    "PrivilegeError",
    "PingResult",
    "Program",
    "Sandbox",
    "SandboxError",
    "SyscallPicker",
    "TraceAttachment",
    "UdpResult",
    "VerifierError",
    "XdpAttachment",
    "XdpControl",
    "close_all",
    "close_panels",
    "doctor",
    "live",
    "live_attachments",
    "live_panels",
    "map_dataframe",
    "read_trace_pipe",
    "syscalls",
    "xdp_interfaces",
])
