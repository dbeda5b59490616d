"""perf_event sampling: a function run at every tick of a CPU clock (``Lab.attach_perf_event``).

The kernel's software CPU clock (``perf_event_open`` with PERF_TYPE_SOFTWARE,
PERF_COUNT_SW_CPU_CLOCK) fires ``frequency`` times a second on each CPU, or on
one (``cpu=``), and runs the function (``struct bpf_perf_event_data *``) in
whatever was on that CPU at that moment: a profiler's sample. What it counts
per pid or per stack is where the CPU time went. BCC keeps one perf event per
CPU in the program's BPF object; detaching closes them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit._errors import ArgumentError, AttachError, NotSupportedError
from labkit.hooks.probe import ProbeHook, TraceAttachment, attach_probes, load_for
from labkit.hooks.protocol import register
from labkit.programs.compile import Program

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["HOOK", "PerfEventHook", "max_sample_rate", "online_cpus", "sample_target"]

PERF_TYPE_SOFTWARE = 1           # enum perf_type_id
PERF_COUNT_SW_CPU_CLOCK = 0      # enum perf_sw_ids
_TARGET = re.compile(r"^cpu-clock (?P<hz>\d+) Hz(?: on CPU (?P<cpu>\d+))?$")
_MAX_RATE = Path("/proc/sys/kernel/perf_event_max_sample_rate")
_ONLINE = Path("/sys/devices/system/cpu/online")


def max_sample_rate() -> int:
    """The most samples a second the kernel allows (perf_event_max_sample_rate; it lowers it under load)."""
    try:
        return int(_MAX_RATE.read_text())
    except (OSError, ValueError):
        return 100_000


def online_cpus() -> list[int]:
    """The CPUs that are online (``0-3,6``), as BCC counts them."""
    try:
        text = _ONLINE.read_text().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return cpus


def sample_target(frequency: int, cpu: int | None) -> str:
    """What the attachment says it samples: ``cpu-clock 99 Hz`` or ``cpu-clock 99 Hz on CPU 0``."""
    return f"cpu-clock {frequency} Hz" + (f" on CPU {cpu}" if cpu is not None else "")


class PerfEventHook(ProbeHook):
    name = "perf_event"
    call = "attach_perf_event"
    fits = ("perf_event",)
    wants = "a perf-event program (a function taking struct bpf_perf_event_data *)"
    home = {"perf_event": "Attach it with lab.attach_perf_event(program, frequency=...) instead."}
    probe_kinds = ("perf_event",)
    prog_type = "PERF_EVENT"

    def validate(self, program: Program | str, *, fn: str | None = None, frequency: Any = 99, cpu: Any = None,
                 name: str | None = None) -> dict:
        top = max_sample_rate()
        if not isinstance(frequency, int) or isinstance(frequency, bool) or not 1 <= frequency <= top:
            raise ArgumentError(f"frequency is samples a second on each CPU, 1 to {top} on this kernel "
                                f"(perf_event_max_sample_rate; 99 is usual), got {frequency!r}")
        if cpu is not None:
            cpus = online_cpus()
            if not isinstance(cpu, int) or isinstance(cpu, bool) or cpu not in cpus:
                raise ArgumentError(f"cpu is one online CPU ({', '.join(map(str, cpus))}) or None for every CPU, "
                                    f"got {cpu!r}")
        return {"fn": fn, "frequency": frequency, "cpu": cpu, "name": name}

    def supported(self, options: dict) -> None:
        if not Path("/proc/sys/kernel/perf_event_paranoid").exists():
            raise NotSupportedError("this kernel has no perf events (CONFIG_PERF_EVENTS is off)",
                                    feature="perf_event")

    def make(self, lab: "Lab", program: Program | str, *, fn: str | None, frequency: int, cpu: int | None,
             name: str | None) -> TraceAttachment:
        if isinstance(program, Program) and not program.closed and (
                (PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK) in program.bpf.open_perf_events):
            # BCC keeps one set of CPU-clock events per program: a second would replace the first's unseen
            raise AttachError(f"{program.name} already samples the CPU clock (one CPU clock per program): detach "
                              "that attachment first, or load the program again", target="perf_event:cpu-clock")
        prog, fn = load_for(lab, program, fn)
        target = sample_target(frequency, cpu)
        # one CPU clock per program (BCC keeps one set of perf events per type): a re-run replaces it
        key = ("perf_event", "cpu-clock", name or f"{prog.name}:{fn}")
        return attach_probes(lab, prog, key, [("perf_event", target, fn)], hook=f"perf_event {target}")

    def bcc_attach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        m = _TARGET.match(target)
        if m is None:
            raise AttachError(f"a perf_event target is 'cpu-clock N Hz [on CPU C]', got {target!r}", target=target)
        prog.bpf.attach_perf_event(ev_type=PERF_TYPE_SOFTWARE, ev_config=PERF_COUNT_SW_CPU_CLOCK,
                                   fn_name=fn.encode(), sample_freq=int(m["hz"]),
                                   cpu=int(m["cpu"]) if m["cpu"] is not None else -1)

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        prog.bpf.detach_perf_event(ev_type=PERF_TYPE_SOFTWARE, ev_config=PERF_COUNT_SW_CPU_CLOCK)


HOOK = register(PerfEventHook())
