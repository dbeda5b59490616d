"""labkit: an interactive eBPF lab on BCC that owns, and gives back, every bit
of kernel state it creates.

    import labkit
    with labkit.Lab() as lab:
        s = lab.trace_clone()
        s.to_dataframe()
"""

from ._compile import Program
from ._errors import (
    AttachError,
    CompileError,
    LabkitError,
    NotSupportedError,
    PrivilegeError,
    SandboxError,
    VerifierError,
)
from ._doctor import doctor
from ._lab import Attachment, Lab, TraceAttachment, XdpAttachment, close_all, live_attachments, syscalls
from ._sandbox import PingResult, Sandbox, UdpResult
from ._stream import EventStream
from ._views import (
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
