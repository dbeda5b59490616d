"""Controls: widgets that choose what a live panel shows, and attach it.

    labkit.SyscallPicker(lab)                   # a Dropdown of syscalls that retargets a live panel
    labkit.XdpControl(lab, "xdp_icmp_drop")     # interface picker, mode, attach/detach, live counters
"""

from __future__ import annotations

import html
from typing import Iterable

import pandas as pd

from labkit._errors import ArgumentError, AttachError, ClosedError, NotSupportedError
from labkit.lab import Lab, syscalls
from labkit.net.interfaces import xdp_interfaces
from labkit.programs.compile import Program
from labkit.hooks import check_fits
from labkit.views.display import widget_bundle
from labkit.views.panel import LivePanel

__all__ = ["SyscallPicker", "XdpControl"]


class SyscallPicker:
    """A Dropdown of the syscalls this kernel can trace (``labkit.syscalls()``)
    and a live panel of the chosen one: picking another retargets the panel
    (the old program is detached first, so only one runs).

        picker = labkit.SyscallPicker(lab, "openat")
        picker.select("execve")        # same as choosing it in the Dropdown
        picker.stream.to_dataframe()
    """

    def __init__(self, lab, value: str = "openat", *, pid: int | None = None, name: str = "syscall picker",
                 rows: int = 10, interval: float = 0.5, by: str | None = "comm", window: int = 10_000):
        import ipywidgets as w  # lazy: ipywidgets is only needed in a notebook

        _check_lab(lab, "SyscallPicker")
        self.lab = lab
        self.pid = pid
        self.name = name
        self.window = window
        self.options = syscalls()
        if value not in self.options:
            raise NotSupportedError(f"no syscall tracepoint for {value!r} on this kernel; labkit.syscalls() lists them",
                                    feature=f"syscalls:sys_enter_{value}")
        self.dropdown = w.Dropdown(options=self.options, value=value, description="syscall")
        self._msg = w.HTML()
        self.panel = LivePanel(None, name=name, title=f"{name}", rows=rows, interval=interval, by=by)
        self.stream = None
        self.widget = w.VBox([w.HBox([self.dropdown, self._msg]), self.panel.widget])
        self.panel.shown_in(self.widget)
        self.select(value)
        self.dropdown.observe(self._changed, names="value")

    def _changed(self, change) -> None:
        try:
            self.select(change["new"])
        except Exception as e:
            self._msg.value = f"<span style='color:#c33'>{html.escape(str(e))}</span>"

    def select(self, syscall: str):
        """Trace ``syscall`` instead (detaches the previous one); returns the new EventStream."""
        if syscall not in self.options:
            raise NotSupportedError(f"no syscall tracepoint for {syscall!r} on this kernel; labkit.syscalls() lists them",
                                    feature=f"syscalls:sys_enter_{syscall}")
        # resume unless the student stopped the panel: a panel whose source had ended (a stream stopped,
        # an attachment detached, as after Run All) starts again with the new one
        running = self.panel.state in ("running", "source stopped")
        old = self.stream
        if old is not None:
            old.stop()
        self.stream = self.lab.trace_syscall(syscall, pid=self.pid, name=self.name, window=self.window)
        self.panel.set_source(self.stream)
        if running:
            self.panel.start()
        if self.dropdown.value != syscall:
            self.dropdown.unobserve(self._changed, names="value")
            self.dropdown.value = syscall
            self.dropdown.observe(self._changed, names="value")
        self._msg.value = f"tracing <code>syscalls:sys_enter_{html.escape(syscall)}</code>" + \
            (f" for pid {self.pid}" if self.pid else " (every process)")
        return self.stream

    @property
    def syscall(self) -> str:
        return self.dropdown.value

    def close(self) -> None:
        self.panel.close()

    def _repr_mimebundle_(self, **kw):
        return widget_bundle(self, **kw)

    def __repr__(self) -> str:
        return f"<labkit.SyscallPicker {self.name}: {self.syscall}, panel {self.panel.state}>"


class XdpControl:
    """Pick an interface (root namespace and the lab's namespaces, each shown
    with the XDP program it carries and in which mode), a mode, and attach or
    detach ``program`` there; a live panel shows its counters.

    Root-namespace interfaces are listed but attaching there needs
    ``allow_root=True``; the interface with the default route is refused by
    ``lab.attach_xdp`` anyway (force=True is never passed from here).

        ctl = labkit.XdpControl(lab, "xdp_icmp_drop")
        ctl.select(sb.target_iface, sb.target_ns); ctl.attach(mode="generic")
    """

    MODES = ("auto", "native", "generic")

    def __init__(self, lab, program: str = "xdp_icmp_drop", *, namespaces: Iterable[str] | None = None,
                 name: str = "xdp control", allow_root: bool = False, rows: int = 10, interval: float = 0.5):
        import ipywidgets as w  # lazy: ipywidgets is only needed in a notebook

        _check_lab(lab, "XdpControl")
        if not isinstance(program, (str, Program)):
            raise ArgumentError(f"XdpControl's program must be a snippet name, C text or a Program from lab.load(), "
                                f"got {type(program).__name__} {program!r}")
        check_fits("attach_xdp", program)  # a program of another kind is refused now, not at the first click
        self.lab = lab
        self.program = program
        self.name = name
        self.allow_root = allow_root
        self._namespaces = None if namespaces is None else list(namespaces)
        self.attachment = None
        self.dropdown = w.Dropdown(description="interface", layout=w.Layout(width="520px"))
        self.mode = w.ToggleButtons(options=list(self.MODES), value="auto", description="mode")
        self._attach_b = w.Button(description="attach", icon="link", button_style="warning")
        self._detach_b = w.Button(description="detach", icon="unlink")
        self._refresh_b = w.Button(description="", icon="refresh", layout=w.Layout(width="40px"),
                                   tooltip="list the interfaces again")
        self._msg = w.HTML()
        self._attach_b.on_click(lambda _b: self._safe(self.attach))
        self._detach_b.on_click(lambda _b: self._safe(self.detach))
        self._refresh_b.on_click(lambda _b: self._safe(self.refresh))
        self.panel = LivePanel(None, name=name, title=f"{name}: {program}", rows=rows, interval=interval)
        self.widget = w.VBox([
            w.HBox([self.dropdown, self._refresh_b]),
            w.HBox([self.mode]),
            w.HBox([self._attach_b, self._detach_b, self._msg]),
            self.panel.widget,
        ])
        self.panel.shown_in(self.widget)
        self.refresh()

    # --------------------------------------------------------------- listing
    def interfaces(self) -> pd.DataFrame:
        """The table behind the Dropdown (see :func:`labkit.xdp_interfaces`)."""
        return xdp_interfaces(self._namespaces)

    def refresh(self) -> pd.DataFrame:
        """List the interfaces again (and who carries XDP now)."""
        df = self.interfaces()
        keep = self.dropdown.value
        options = []
        for r in df.itertuples():
            where = r.namespace or "root"
            flags = []
            if r.xdp != "-":
                flags.append(f"XDP: {r.xdp}")
            if r.default_route:
                flags.append("default route")
            if not r.namespace and not self.allow_root:
                flags.append("view only")
            label = f"{r.iface} in {where}" + (f" — {'; '.join(flags)}" if flags else "")
            options.append((label, (r.namespace or None, r.iface)))
        self.dropdown.options = options
        values = [v for _, v in options]
        if keep in values:
            self.dropdown.value = keep
        else:
            sandbox = [v for v in values if v[0] and v[0].endswith("-tgt") and v[1] != "lo"]
            self.dropdown.value = sandbox[0] if sandbox else (values[0] if values else None)
        return df

    def select(self, iface: str, netns: str | None = None) -> None:
        """Choose an interface, as the Dropdown does."""
        value = (netns or None, iface)
        if value not in [v for _, v in self.dropdown.options]:
            self.refresh()
        if value not in [v for _, v in self.dropdown.options]:
            raise ArgumentError(f"no interface {iface!r} in {netns or 'the root namespace'} among the listed ones")
        self.dropdown.value = value

    # -------------------------------------------------------------- actions
    def attach(self, iface: str | None = None, netns: str | None = None, mode: str | None = None):
        """Attach the program to the chosen interface (or ``iface``/``netns``)
        in the chosen mode; returns the XdpAttachment."""
        if iface is not None:
            self.select(iface, netns)
        if mode is not None:
            self.mode.value = mode
        if self.dropdown.value is None:
            raise ArgumentError("no interface chosen: pick one in the list (or control.select(iface, netns))")
        ns, name = self.dropdown.value
        if ns is None and not self.allow_root:
            raise AttachError(f"{name} is in the root namespace: this control only views it. Attach to the "
                              "sandbox, or make the control with allow_root=True (instructor demos).", target=name)
        # (read before the old attachment goes) resume unless the student stopped the panel: a panel whose
        # attachment had been detached (as after Run All) starts again with the new one
        running = self.panel.state in ("running", "source stopped")
        if self.attachment is not None:
            self.attachment.detach()
        self.attachment = self.lab.attach_xdp(self.program, iface=name, netns=ns, mode=self.mode.value)
        self.panel.set_source(self.attachment)
        if running:
            self.panel.start()
        self._msg.value = f"attached to {html.escape(name)} in {html.escape(ns or 'root')}: " \
                          f"{self.attachment.mode} mode via {self.attachment.via}"
        self.refresh()
        return self.attachment

    def detach(self) -> None:
        """Detach the program (the panel keeps the last counters)."""
        if self.attachment is not None:
            self.attachment.detach()
            self.panel.refresh()
            self._msg.value = "detached"
        self.refresh()

    def close(self) -> None:
        self.panel.close()
        if self.attachment is not None:
            self.attachment.detach()

    def _safe(self, fn) -> None:
        try:
            fn()
        except Exception as e:
            self._msg.value = f"<span style='color:#c33'>{html.escape(type(e).__name__)}: " \
                              f"{html.escape(str(e))}</span>"

    def _repr_mimebundle_(self, **kw):
        return widget_bundle(self, **kw)

    def __repr__(self) -> str:
        att = self.attachment.hook if self.attachment is not None and self.attachment.attached else "nothing"
        return f"<labkit.XdpControl {self.name}: {self.program} on {att}>"


def _check_lab(lab, control: str) -> None:
    if not isinstance(lab, Lab):
        raise ArgumentError(f"{control} needs an open labkit.Lab as its first argument (lab = labkit.Lab()), "
                            f"got {type(lab).__name__} {lab!r}")
    if lab.closed:
        raise ClosedError(f"{control} needs an open labkit.Lab; this one is closed: make a new one with labkit.Lab()")
