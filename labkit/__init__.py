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

__version__ = "0.1.0"

__all__ = sorted([
    "AttachError",
    "Attachment",
    "CompileError",
    "EventStream",
    "Lab",
    "LabkitError",
    "NotSupportedError",
    "PrivilegeError",
    "PingResult",
    "Program",
    "Sandbox",
    "SandboxError",
    "TraceAttachment",
    "UdpResult",
    "VerifierError",
    "XdpAttachment",
    "close_all",
    "doctor",
    "live_attachments",
    "syscalls",
])
