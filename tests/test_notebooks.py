"""Every lesson executes headless on the ``labkit`` kernel (cwd notebooks/),
then all its cells run a second time in the same kernel; no cell errors except
those tagged ``raises-exception``, whose error is the one the lesson teaches;
what the lesson shows holds; the student's verdicts (the last cell, tagged
``summary``, shows them as JSON) tell the shipped starters from the reference
answers. The lessons hold no test plumbing: what the assertions need, the test
reads from the kernel's variables after each round, with a probe cell it
appends to its own copy of the notebook (PROBES).

Run All leaves a lesson's widgets working: nothing is given back by the last
cell. So the second round must hold exactly what the first held (re-running
replaces, never duplicates: attachments, live panels, sandboxes, perf events,
BPF programs and links), and when the kernel stops, everything goes: no
sandbox it owned, no BPF program or link it held (by id), no labkit XDP
program in the root namespace or in its namespaces.

The lessons run two at a time (LABKIT_NB_WORKERS) to keep the suite short.
Also here: each executed lesson exports to an offline report (the export
`labkit report` uses, opened in a chromium that can reach nothing;
tests/test_report.py runs the whole command on a lesson), the navigation is
generated and up to date, and the exercise checkers say *incorrect* (with the
reason) for wrong answers.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from kstate import bpf_fds, perf_attachments
from nbclient import NotebookClient

import labkit
from fixtures.chromium import ARTIFACTS, assert_report_renders, chromium, external_requests, require_chromium
from labkit.commands.report.export import export_html
from labkit.commands.report.offline import external_references
from labkit.exercises import SUMMARY_MIME
from labkit.exercises.framework import snippet_text
from labkit.hooks import lsm as _lsm
from labkit.hooks.cgroup import HOOK as _CGROUP_HOOK
from labkit.net import records
from labkit.net import xdp as _xdp
from labkit.programs import hooks as _hooks

# the first test also executes the lessons (a module fixture): ~1 min here, far more under qemu/TCG, where
# tests/stock_kernel/guest-run.sh gives it more (LABKIT_NB_TIMEOUT: ten lessons twice took 30 min and more
# on a busy host)
pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.requires("root", "tracefs"),
              pytest.mark.timeout(int(os.environ.get("LABKIT_NB_TIMEOUT", "1800")))]
# one cell's limit: lesson 04's verifier walks take minutes under TCG on a busy host (guest-run.sh: 900)
CELL_TIMEOUT = int(os.environ.get("LABKIT_NB_CELL_TIMEOUT", "240"))

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
# a student's kept copy, NN-name.mine-<time>.ipynb (labkit lessons reset), is no lesson
LESSONS = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb") if re.match(r"^\d\d-[a-z0-9-]+\.ipynb$", p.name))
WORKERS = int(os.environ.get("LABKIT_NB_WORKERS", "2"))
#: the seconds one run of a lesson took on this 2-core host (12 and 14: estimated): the order they start in
LONGEST = {"10": 81, "04": 69, "07": 64, "11": 61, "02": 56, "08": 51, "13": 51, "14": 45, "12": 45, "06": 43,
           "00": 38, "09": 32, "05": 29, "03": 27, "01": 25}
KPROBES = _hooks.kprobes_available()[0]

EXPECTED_LESSONS = ["00-check-your-lab", "01-hello-clone", "02-xdp-ping-drop", "03-maps-vs-events",
                    "04-verifier-mistakes", "05-tracing-user-space", "06-maps-in-depth", "07-xdp-beyond-drop",
                    "08-tc", "09-modern-toolchain", "10-profiling", "11-latency", "12-security",
                    "13-cgroup-programs", "14-libbpf-application"]


# What each lesson's assertions read from its kernel after a round: expressions on
# the lesson's own variables (and, first, code that uses its widgets once more,
# which must still work after Run All). Printed as JSON by the probe cell.
PROBES: dict[str, tuple[str, dict[str, str]]] = {
    "00-check-your-lab": ("", {
        "checks": "dict(zip(checks.name, checks.status))",
        "first event seen": "bool(seen)",
        "sandbox ping received": "r.received",
    }),
    "01-hello-clone": ("""
picker.select("getppid")                   # the picker still works after Run All
os.getppid()
picker_alive = bool(picker.stream.wait(lambda df: (df.pid == os.getpid()).any(), timeout=10))
picker_detail = [picker.stream.state, picker.stream.received, picker.stream.lost, os.getpid(),
                 sorted(set(picker.stream.to_dataframe().pid.tolist()))[:12]]
""", {
        "syscall per way": "routes",
        "machine": "platform.machine()",
        "printk calls": "N",
        "printk counted in map": "counted",
        "printk lines read": "len(lines)",
        "clone events by kind (this process)": "mine.kind.value_counts().to_dict()",
        "comms counted": "len(counts)",
        "picker after run all": "[picker.syscall, picker_alive]",
        "picker detail": "picker_detail",
    }),
    "02-xdp-ping-drop": ("""
ctl.select(sb.target_iface, sb.target_ns)  # the control still works after Run All (and leaves XDP
ctl.attach(mode="generic")                 # attached: the kernel's stop must take it off)
control_ping = sb.ping(count=2, interval=0.1, timeout=0.5)
""", {
        "pings sent": "r.transmitted",
        "pings answered": "r.received",
        "icmp dropped": "dropped",
        "classic udp after flush": "udp_classic.received",
        "good udp after flush": "udp_good.received",
        "good icmp dropped": "good.packets('drop', 'icmp')",
        "xdp after detach": "target_now.xdp.tolist()",
        "control after run all": "[control_ping.transmitted, control_ping.received]",
    }),
    "03-maps-vs-events": ("", {
        "calls": "compare.n['getppid() calls made']",
        "counted": "compare.n['counted in the map']",
        "received": "compare.n['events received']",
        "lost": "compare.n['events lost (counted by the kernel)']",
        "ns per call": "{k: round(v) for k, v in cost.items()}",
        "histogram buckets": "len(sizes)",
    }),
    "04-verifier-mistakes": ("", {
        "bounds error": "type(bounds_error).__name__",
        "bounds cause": "bounds_error.log.splitlines()[-3]",
        "null error": "type(null_error).__name__",
        "loop error": "type(loop_error).__name__",
        "loop log lines": "len(loop_error.log.splitlines())",
        "loop top insn visits": "times",
    }),
    "05-tracing-user-space": ("", {
        "python": "python",
        "usleep calls timed": "int(took.value.sum())",
        "fastest bucket (µs)": "took['took (µs)'].iloc[0]",
        "python usdt probes": "len(probes)",
        "lk_fib calls (BCC, this process)": "int(counted.set_index('name').value.get('lk_fib', 0))",
        "lk_fib calls (bpftrace, a child)": "bt_fib",
    }),
    "06-maps-in-depth": ("", {
        "entries before": "before",
        "held": "{k: [int(x) for x in v] for k, v in held.items()}",
        "refused": "[int(x) for x in refused]",
        "per-CPU slots": "slots",
        "cpus": "len(cpus)",
        "ns per update": "costs['ns per update'].to_dict()",
        "updates": "costs['updates'].to_dict()",
        "memlock": "costs['memlock (bytes, 1024 entries)'].to_dict()",
        "race": "race_table['count'].to_dict()",
        "loss": "loss[['records sent', 'received', 'lost']].to_dict()",
        "perf lost right after the burst": "lost_before",
        "order": "order.to_dict()",
        "memory": "memory.bytes.to_dict()",
        "ordered burst": "sent",
    }),
    "08-tc": ("", {
        "seen": "seen",
        "pings": "pings",
        "udp received": "udp_sent",
        "vias": "[tc_in.via, tc_out.via]",
        "xdp mode": "x.mode",
        "ttl before": "ttl_before",
        "ttl after": "ttl_after",
        "ttl rewritten": "ttl_rewritten",
        "ttl without checksum": "ttl_broken",
        "checksum errors counted": "csum_dropped",
        "sandbox": "sb.id",
    }),
    "09-modern-toolchain": ("", {
        "bcc prog id": "bcc_id",
        "prog show": "shown",
        "map dump has entries": "'key' in dump and 'value' in dump",
        "xlated instructions": "len(xlated_insns)",
        "jited dump": "jited_dump.splitlines()[0] if jited_dump else ''",
        "jit bytes": "len(jit)",
        "jited size": "jited_size",
        "asm lines": "len([l for l in asm.splitlines() if re.match(r'\\s+[0-9a-f]+:', l)])",
        "asm head": "[l.split(':', 1)[1].strip() for l in asm.splitlines() if re.match(r'\\s+[0-9a-f]+:', l)][:12]",
        "headers match": "headers_match",
        "offsets": "offsets['byte offset'].to_dict()",
        "vmlinux lines": "vmlinux_lines",
        "vmlinux path": "str(header)",
        "relocated": "relocated",
        "kids": "len(kids)",
        "core right": "core_right",
        "bcc right": "bcc_right",
        "fentry": "fentry_result",
        "bpf_loop total": "loop_total",
        "flavors moved": "{f: list(v) for f, v in moved.items()}",
        "flavors parent": "int(seen_by_flavors[0])",
        "true parent": "os.getppid()",
        "state member": "state_name",
        "state value": "int(seen_by_flavors[2])",
        "tp_btf parent": "tp_btf_parent",
        "me": "me",
        "bcc adds": "bcc_adds",
    }),
    "10-profiling": ("", {
        "flags": "workloads.FLAGS",
        "on cpu": "on_cpu",
        "samples": "total",
        "threads": "dict(zip(per_thread.thread, per_thread.samples))",
        "main tid is the pid": "bool((per_thread.thread == 'main').sum() == 1 and child.pid in per_thread.index)",
        "kernel -14 share": "float(samples.value[samples.kernel_stack_id == -14].sum() / total)",
        "symbolised": "symbolised['name [file]'].tolist()",
        "stack columns": "list(shown.columns)",
        "leaf top": "frames['leaf (self)'].idxmax()",
        "leaf share": "float(frames['leaf (self)'].max() / total)",
        "stage shares": "{s: float(frames.loc[s, 'anywhere (total)'] / total) for s in STAGES if s in frames.index}",
        "folded head": "folded.index[0]",
        "folded total": "int(folded.sum())",
        "waits": "[[r['where (user stack)'], float(r['ms off the CPU']), list(r['kernel frames'])] "
                 "for _, r in waits.iterrows()]",
    }),
    "11-latency": ("", {
        "hook": "hook",
        "tried": "[list(t[:2]) for t in tried]",
        "machine": "os.uname().machine",
        "slept": "int(slept.value.sum())",
        "asked ms": "list(ASKED_MS)",
        "per syscall": "{f'{p} {s}': int(n) for (p, s), n in by_syscall.calls.items()}",
        "runq": "{k: int(v) for k, v in counted.items()}",
    }),
    "07-xdp-beyond-drop": ("""
fw.block(f"{sb.host_ip}/32")               # the firewall control still works after Run All
control_udp = sb.send_udp(count=3, timeout=0.3).received
fw.unblock(f"{sb.host_ip}/32")
""", {
        "far before": "[no_route.transmitted, no_route.received]",
        "forwarding": "forwarding",
        "tx ping": "[tx_ping.transmitted, tx_ping.received]",
        "tx host": "tx_seen[\"host's stack\"].to_dict()",
        "tx target": "tx_seen[\"target's stack\"].to_dict()",
        "native alone": "native_alone",
        "native with peer": "native_with_peer",
        "devmap": "labkit.map_dataframe(router, 'out').value.tolist()",
        "routed": "[routed.transmitted, routed.received]",
        "redirected": "redirected",
        "middle received": "middle_received",
        "middle forwarded": "middle_forwarded",
        "after detach": "after_detach.received",
        "udp to 4242": "to_4242.received",
        "udp elsewhere": "elsewhere.received",
        "exceptions": "exceptions",
        "exception ifindex": "[exception_ifindex, sb.target_ifindex]",
        "fw steps": "steps",
        "fw both blocked": "both_blocked[['prefixlen', 'drops']].values.tolist()",
        "fw counters": "{f'{r.action} {r.protocol}': r.packets for r in fw_counts.itertuples()}",
        "fw blocked now": "len(fw.blocked())",
        "control after run all": "control_udp",
    }),
}
PROBES["13-cgroup-programs"] = ("", {
    "fs type": "fs_type",
    "root": "str(root)",
    "my cgroup": "cgroup_of()",
    "cgroups": "cgroups.to_dict('list')",
    "demo path": "str(cg.path)",
    "connects": "connects.iloc[:, 1].tolist()",
    "verdicts": "verdicts",
    "traffic": "traffic.to_dict('index')",
    "rounds": "ROUNDS",
    "sends": "SENDS",
    "udp sends": "sends",
    "arrived": "arrived",
    "dropper": "dropper.state",
})
PROBES["14-libbpf-application"] = ("", {
    "ready": "[ready, ready2]",
    "events": "events.to_dict('list')",
    "events2": "events2.to_dict('list')",
    "counted": "[counted, counted2]",
    "tool runs": "tool_runs.to_dict('list')",
    "shared": "shared",
    "has loop": "HAS_LOOP",
    "paths": "PATHS",
    "pins path": "str(pins.path)",
    "struct": "struct",
    "jumps": "[jumps, verdict]",
})
PROBES["12-security"] = ("", {
    "caps": "caps.to_dict('list')",
    "unpriv": "unpriv",
    "asked": "asked",
    "lsms": "lsms",
    "lsm ok": "lsm_ok",
    "lsm why": "lsm_why",
    "sandbox": "str(cg.path)",
    "work": "work",
    "execs": "execs.to_dict('list') if lsm_ok else None",
    "exec refusals": "exec_refusals if lsm_ok else None",
    "opens": "opens.to_dict('list') if lsm_ok else None",
    "open refusals": "open_refusals if lsm_ok else None",
    "guarded": "[type(guarded).__name__, guarded.refused, guarded.attached_ms] if guarded is not None else None",
    "machine_wide left": "[a.program.name for a in lab.attachments if a.program.name == 'machine_wide']",
})
#: lessons whose reference answers only a kernel with a feature can run: that feature's probe
NEEDS_TO_CHECK = {"12-security": _lsm.available}
PROBE_MARK = "LABKIT-TEST-PROBE "
CGROUP_RECORDS = _CGROUP_HOOK.records


def _probe_cell(name: str):
    setup, exprs = PROBES[name]
    fields = ", ".join(f"{k!r}: {v}" for k, v in exprs.items())
    source = (f"{setup.strip()}\nimport json as _json\n"
              f"print({PROBE_MARK!r} + _json.dumps({{{fields}}}, "
              "default=lambda o: o.item() if hasattr(o, 'item') else str(o)))")
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = "test-probe"
    return cell


def _probe(cell) -> dict:
    for o in cell.outputs:
        if o.output_type == "stream" and PROBE_MARK in o.text:
            return json.loads(o.text.split(PROBE_MARK, 1)[1])
    raise AssertionError(f"the probe printed nothing: {cell.outputs}")


@dataclass
class Run:
    name: str
    rounds: list = field(default_factory=list)       # executed notebook after each round
    summaries: list = field(default_factory=list)    # the summary JSON of each round
    facts: list = field(default_factory=list)        # what the probe read from the kernel after each round
    state: list = field(default_factory=list)        # kernel state after each round (and its probe)
    ids: dict = field(default_factory=lambda: {"prog": set(), "link": set()})   # BPF ids the kernel held
    pid: int | None = None
    seconds: list = field(default_factory=list)
    after_exit: dict = field(default_factory=dict)
    error: BaseException | None = None


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _summary(nb) -> dict:
    cells = [c for c in nb.cells if "summary" in _tags(c)]
    assert len(cells) == 1, "a lesson has exactly one cell tagged summary (its last code cell)"
    for out in cells[0].outputs:
        data = out.get("data", {})
        if SUMMARY_MIME in data:
            d = data[SUMMARY_MIME]
            return json.loads(d) if isinstance(d, str) else dict(d)
    raise AssertionError(f"the summary cell shows no JSON: {cells[0].outputs}")


def _fdinfo_ids(pid: int, fds: list[str], key: str) -> set[int]:
    ids = set()
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                ids |= {int(line.split()[1]) for line in f if line.startswith(key + ":")}
        except OSError:
            pass
    return ids


def _kernel_state(pid: int, summary: dict) -> tuple[dict, dict]:
    """What the kernel process holds (counts, to compare rounds), and the ids of
    its BPF programs and links (to look for after it exits)."""
    fds = bpf_fds(pid)
    perf = perf_attachments(pid)
    state = {
        "perf events": len(perf),
        "fds": {k: len(v) for k, v in fds.items() if k != "map"},
        "sandboxes": len([r for r in records.list_sandboxes() if r.owner_pid == pid]),
        "cgroups": len([r for r in CGROUP_RECORDS.records() if r.get("pid") == pid]),
        "attachments": summary["attachments_left"],
        "panels": summary["panels_left"],
    }
    ids = {"prog": _fdinfo_ids(pid, fds["prog"] + fds["link"], "prog_id") | {e["prog_id"] for e in perf if "prog_id" in e},
           "link": _fdinfo_ids(pid, fds["link"], "link_id")}
    return state, ids


def _bpf_ids(kind: str) -> set[int]:
    r = subprocess.run(["bpftool", kind, "show", "-j"], capture_output=True, text=True, check=True)
    return {e["id"] for e in json.loads(r.stdout or "[]")}


def _gone_after_exit(pid: int, ids: dict) -> dict:
    """Once the kernel process is gone: what it owned that still exists."""
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    left: dict = {}
    deadline = time.monotonic() + 10    # the kernel frees programs and links shortly after their last fd
    while True:
        left = {
            "process": os.path.exists(f"/proc/{pid}"),
            "leftover sandboxes": [r.id for r in records.find_leftovers() if r.owner_pid == pid],
            "owned sandboxes": [r.id for r in records.list_sandboxes() if r.owner_pid == pid],
            "owned cgroups": [r["cgroup"] for r in CGROUP_RECORDS.records() if r.get("pid") == pid],
            "BPF programs": sorted(ids["prog"] & _bpf_ids("prog")),
            "BPF links": sorted(ids["link"] & _bpf_ids("link")),
        }
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _execute_twice(path: Path) -> Run:
    run = Run(path.stem)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(_probe_cell(path.stem))     # only in this copy: the lesson file has no plumbing
    # a kernel's start (imports of labkit, pandas, matplotlib) gets a cell's time too: nbclient's 60 s is less
    # than it takes in an emulated guest beside another one
    client = NotebookClient(nb, kernel_name="labkit", timeout=CELL_TIMEOUT, startup_timeout=CELL_TIMEOUT,
                            allow_errors=False, store_widget_state=True,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        with client.setup_kernel():
            # a graceful stop, as in JupyterLab, but with time for the exit handlers: on a slow emulated
            # kernel, giving back a three-namespace sandbox can outlast jupyter_client's 5 s before SIGKILL
            # (then the next Lab reaps it: tests/test_reaping.py); here the handlers themselves are judged
            client.km.shutdown_wait_time = 60
            run.pid = getattr(client.km.provisioner, "pid", None)
            for _ in range(2):
                t0 = time.monotonic()
                for i, cell in enumerate(nb.cells):
                    client.execute_cell(cell, i)
                run.seconds.append(time.monotonic() - t0)
                client.set_widgets_metadata()       # what `labkit report` records for its snapshots
                run.rounds.append(copy.deepcopy(nb))
                summary = _summary(nb)
                run.summaries.append(summary)
                run.facts.append(_probe(nb.cells[-1]))
                run.pid = run.pid or summary["pid"]
                state, ids = _kernel_state(summary["pid"], summary)
                run.state.append(state)
                for k in ids:
                    run.ids[k] |= ids[k]
    except BaseException as e:  # reported by the test of this lesson
        run.error = e
    if run.pid:     # the kernel was shut down (gracefully, as a user would) when the block above ended
        run.after_exit = _gone_after_exit(run.pid, run.ids)
    return run


def _needed(session) -> list[Path]:
    """The lessons the selected tests look at (all of them unless -k narrows it)."""
    need: set[str] = set()
    for item in session.items:
        if "runs" not in getattr(item, "fixturenames", ()):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "name" in params:
            need.add(params["name"])
        m = re.match(r"test_(\d\d)_", getattr(item, "originalname", item.name))
        if m:
            need |= {n for n in EXPECTED_LESSONS if n.startswith(m.group(1))}
    return [p for p in LESSONS if p.stem in need] or LESSONS


@pytest.fixture(scope="module")
def runs(request) -> dict[str, Run]:
    assert [p.stem for p in LESSONS] == EXPECTED_LESSONS
    # the longest first: the lanes finish together instead of one running lesson 10 alone at the end
    lessons = sorted(_needed(request.session), key=lambda p: -LONGEST.get(p.stem[:2], 0))
    t0 = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        done = dict(zip((p.stem for p in lessons), pool.map(_execute_twice, lessons)))
    print(f"\nlessons executed twice each in {time.monotonic() - t0:.1f}s "
          f"({', '.join(f'{k[:2]}: ' + '+'.join(f'{s:.1f}' for s in r.seconds) for k, r in done.items())})")
    return done


def _kernel_at_least(major: int, minor: int) -> bool:
    rel = os.uname().release.split("-")[0].split(".")
    return (int(rel[0]), int(rel[1])) >= (major, minor)


def _lesson(runs: dict[str, Run], name: str) -> Run:
    run = runs[name]
    if run.error is not None:
        raise AssertionError(f"{name} did not execute: {run.error}") from run.error
    assert len(run.rounds) == 2
    return run


def _errors(nb) -> list[tuple[int, list[str], str]]:
    return [(i, _tags(c), o["ename"]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error"]


def _tagged(nb, tag: str):
    cells = [c for c in nb.cells if tag in _tags(c)]
    assert cells, f"no cell tagged {tag}"
    return cells[0]


def _text(cell) -> str:
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif "data" in o:
            parts += [str(v) for k, v in o.data.items() if k.startswith("text/")]
        elif o.output_type == "error":
            parts.append(f"{o.ename}: {o.evalue}")
    return "\n".join(parts)


def _mimes(cell) -> list[str]:
    return [m for o in cell.outputs for m in o.get("data", {})]


# ------------------------------------------------------------- every lesson
@pytest.mark.parametrize("name", EXPECTED_LESSONS)
def test_lesson_runs_twice_and_gives_everything_back(runs, name):
    run = _lesson(runs, name)
    for rnd, (nb, summary) in enumerate(zip(run.rounds, run.summaries), 1):
        for i, tags, ename in _errors(nb):
            assert "raises-exception" in tags, f"round {rnd}: cell {i} raised {ename} without the tag"
        # the lesson as shipped answers nothing itself: every exercise's starter is judged incorrect (and
        # says why) or not attempted, while every reference solution the lesson checks passes on this kernel
        assert not any(v == "correct" for v in summary["exercises"].values()), (rnd, summary["exercises"])
        for q, status in summary["exercises"].items():
            if status == "incorrect":
                assert summary["messages"][q].strip(), (rnd, q, "an incorrect verdict says why")
        if name in NEEDS_TO_CHECK and not NEEDS_TO_CHECK[name]()[0]:
            # this kernel cannot run the lesson's programs (lesson 12 without BPF LSM): the reference is judged
            # incorrect, and the verdict says why (a NotSupportedError), never a traceback
            assert set(summary["reference_checked"].values()) == {"incorrect"}, (rnd, summary["reference_checked"])
        else:
            assert summary["reference_checked"] and \
                all(v == "correct" for v in summary["reference_checked"].values()), (rnd, summary["reference_checked"])
    assert run.summaries[0]["pid"] == run.summaries[1]["pid"], "both rounds ran in the same kernel"
    # Run All leaves the lesson's widgets working; running it again replaces, never duplicates
    assert run.state[1] == run.state[0], f"round 2 holds more or less than round 1: {run.state}"
    # and when the kernel stops, everything it held is given back
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit


def test_no_labkit_xdp_left_where_lessons_worked(runs):
    for name in runs:
        _lesson(runs, name)
    mine = {r.pid for r in runs.values()}
    owners = {ns: r.owner_pid for r in records.list_sandboxes() for ns in r.namespaces}
    for x in _xdp.find_labkit_xdp():
        assert x["netns"] is not None, f"a labkit XDP program in the root namespace: {x}"
        assert owners.get(x["netns"]) not in mine, f"a lesson left XDP behind: {x}"


@pytest.mark.requires("chromium")
@pytest.mark.browser
@pytest.mark.parametrize("name", EXPECTED_LESSONS)
def test_lesson_exports_to_an_offline_report(runs, name, tmp_path):
    """The executed lesson (its second round, without the test's probe cell) through
    the report's export: self-contained HTML with its plots, tables and widget
    snapshots, opened in a chromium that can reach nothing."""
    require_chromium()
    nb = copy.deepcopy(_lesson(runs, name).rounds[-1])
    nb.cells = [c for c in nb.cells if c.get("id") != "test-probe"]
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    body, _ = export_html(nb, name=name, path=NOTEBOOKS)
    assert external_references(body) == [] and "<script" not in body.lower()
    html = tmp_path / f"{name}.html"
    html.write_text(body)
    with chromium(tmp_path / "profile") as b:
        page = b.page()
        page.goto(html.as_uri(), wait_until="load")
        assert_report_renders(page, code)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report-{name}.png"), full_page=True)
        assert external_requests(b) == [] and b.blocked == []


@pytest.mark.parametrize("name", EXPECTED_LESSONS)
def test_lesson_outline(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    cells = [c for c in nb.cells if "nav" not in _tags(c)]
    assert cells[0].cell_type == "markdown" and "**What you will learn:**" in cells[0].source
    setup = cells[1]
    assert setup.cell_type == "code" and len(setup.source.strip().splitlines()) == 1, "one-line setup cell"
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "## Exercise" in text and "## Further reading" in text
    # the last cell shows the verdicts and gives nothing back (Run All leaves the widgets working);
    # it says how to give everything back now, and the text above it that the kernel's stop does
    last = [c for c in cells if c.cell_type == "code"][-1]
    run = [line for line in last.source.splitlines() if line.split("#")[0].strip()]
    assert "summary" in _tags(last) and [line.split("#")[0].strip() for line in run] == ["ex.summary()"], last.source
    assert "lab.close()" in last.source and "labkit.close_panels()" in last.source
    assert "Kernel › Shut Down Kernel" in text and "Kernel › Restart Kernel" in text
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "ex.record" not in code and "sys.last_value" not in code, "no test plumbing in the lessons"
    # a student writes C in %%bpf cells, each followed by its check, never in a Python string
    for i, c in enumerate(cells):
        if c.cell_type == "code" and c.source.startswith("%%bpf my_program"):
            assert re.fullmatch(r"ex\.q\d\.check\(my_program\)", cells[i + 1].source.strip()), cells[i + 1].source
        assert not re.search(r"^my_program\s*=", c.source, re.M), c.source
    assert "solution-check" in {t for c in cells for t in _tags(c)}, "the headless run proves a checker"
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit lessons without outputs"
    assert [c for c in nb.cells if "nav" in _tags(c)][0] is nb.cells[1], "navigation right after the title"


def test_navigation_is_generated_and_up_to_date():
    r = subprocess.run([sys.executable, str(NOTEBOOKS / "make_nav.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    nb = nbformat.read(NOTEBOOKS / "01-hello-clone.ipynb", as_version=4)
    nav = [c.source for c in nb.cells if "nav" in _tags(c)]
    assert len(nav) == 2 and nav[0] == nav[1]
    assert "(00-check-your-lab.ipynb)" in nav[0] and "(index.ipynb)" in nav[0] and "(02-xdp-ping-drop.ipynb)" in nav[0]


# -------------------------------------------------------- what each shows
def test_00_doctor_and_first_event(runs):
    run = _lesson(runs, "00-check-your-lab")
    for nb, s, f in zip(run.rounds, run.summaries, run.facts):
        assert f["checks"]["hook: tracepoint"] == "ok" and f["checks"]["privileges"] == "ok"
        assert f["first event seen"] is True
        assert f["sandbox ping received"] == 2
        assert "fix" in _text(_tagged(nb, "doctor"))
        assert "task:task_newtask" in _text(_tagged(nb, "first-event")) or "kprobe" in _text(_tagged(nb, "first-event"))


# lesson 01's prose: on x86-64 glibc makes a fork with clone, a vfork with vfork and a thread with
# clone3; arm64 has no fork or vfork syscall, and its glibc 2.36 makes every task with clone (measured
# on Debian 12's arm64 6.1 by tests/stock_kernel/run-arm64)
ROUTES = {
    "x86_64": {"os.fork()": "clone", "subprocess.run()": "vfork", "threading.Thread": "clone3"},
    "aarch64": {"os.fork()": "clone", "subprocess.run()": "clone", "threading.Thread": "clone"},
}


def test_01_classic_fails_honestly_and_labkit_sees_every_kind(runs):
    run = _lesson(runs, "01-hello-clone")
    for nb, s, f in zip(run.rounds, run.summaries, run.facts):
        classic = _tagged(nb, "classic-attach")
        errors = [o for o in classic.outputs if o.output_type == "error"]
        if KPROBES:
            assert not errors and "clone by uid" in _text(classic)
        else:
            assert [e.ename for e in errors] == ["NotSupportedError"], _text(classic)
            assert "kprobes are not available" in errors[0].evalue
        # which syscall each way of making a task calls, as the prose says per architecture
        routes = f["syscall per way"]
        assert set(routes) == {"os.fork()", "subprocess.run()", "threading.Thread"}, routes
        assert routes == ROUTES.get(f["machine"], routes), (f["machine"], routes)
        assert all(routes.values()), routes
        assert f"{f['machine']}: this kernel has the syscalls" in _text(_tagged(nb, "clone-routes"))
        # trace_printk loses lines silently; the map counts every call
        assert f["printk counted in map"] >= f["printk calls"]
        assert f["printk lines read"] < f["printk calls"]
        kinds = f["clone events by kind (this process)"]
        assert kinds.get("fork", 0) >= 5 and kinds.get("vfork", 0) >= 5 and kinds.get("thread", 0) >= 5, kinds
        assert f["comms counted"] >= 1
        assert "execve" in _text(_tagged(nb, "picker-execve")), "the picker traced execve"
        assert f["picker after run all"] == ["getppid", True], \
            ("after Run All the picker still retargets and traces", f["picker detail"])
        assert s["checks"]["q2"][-1:] == ["incorrect"] and s["exercises"]["q2"] == "incorrect", \
            "the unchanged snippet is judged incorrect, and checking the reference does not change that"
        assert "CLONE_THREAD" in s["messages"]["q2"], s["messages"]["q2"]
        # live views are widgets (one output, refreshed in place), snapshots are static HTML with a PNG
        live = _tagged(nb, "live-clones")
        assert "application/vnd.jupyter.widget-view+json" in _mimes(live)
        assert len([o for o in live.outputs if o.output_type != "stream"]) == 1
        snap = [o for o in _tagged(nb, "picker-execve").outputs if "text/html" in o.get("data", {})]
        assert snap and "data:image/png;base64," in snap[-1].data["text/html"] and "execve" in snap[-1].data["text/html"]
        assert "image/png" in _mimes(_tagged(nb, "per-second-plot"))


def test_02_pings_dropped_and_the_arp_lesson(runs):
    run = _lesson(runs, "02-xdp-ping-drop")
    for nb, s, f in zip(run.rounds, run.summaries, run.facts):
        assert f["pings sent"] == 10 and f["pings answered"] == 0
        assert f["icmp dropped"] == f["pings sent"], "every ping was counted as dropped, exactly"
        assert f["classic udp after flush"] == 0, "the classic program kills ARP, so UDP fails after a flush"
        assert f["good udp after flush"] == 10
        assert f["good icmp dropped"] == 3
        assert "attached in generic mode" in _text(_tagged(nb, "control-generic"))
        assert set(f["xdp after detach"]) == {"-"}
        assert f["control after run all"] == [2, 0], "after Run All the XDP control still attaches (pings dropped)"
        assert set(s["checks"]["q1"]) == {"incorrect"} and "ARP" in s["messages"]["q1"], \
            "the classic program as shipped in the %%bpf cell is judged incorrect, naming ARP"
        # no lesson cell touches a real interface: the room demo is `labkit demo xdp` (tests/test_demo.py)
        assert not any("instructor" in _tags(c) for c in nb.cells) and "labkit demo xdp --iface" in \
            "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        snap = [o for o in _tagged(nb, "counters-snapshot").outputs if "text/html" in o.get("data", {})][-1]
        html = snap.data["text/html"]
        assert "data:image/png;base64," in html and "icmp" in html and "drop" in html
        assert "application/vnd.jupyter.widget-view+json" in _mimes(_tagged(nb, "xdp-control"))


def test_03_maps_are_exact_events_count_their_losses(runs):
    run = _lesson(runs, "03-maps-vs-events")
    for s, f in zip(run.summaries, run.facts):
        assert 0 <= f["counted"] - f["calls"] <= 5, f       # the kernel's own getppid() once a second
        assert f["lost"] > 0, "a 4 KiB ring buffer cannot hold 100,000 events"
        assert abs(f["received"] + f["lost"] - f["counted"]) <= 5, f
        assert set(f["ns per call"]) == {"nothing attached", "counting in a map", "sending an event"}
        assert f["histogram buckets"] >= 7
        assert set(s["checks"]["q1"]) == {"incorrect"} and "stayed empty" in s["messages"]["q1"], \
            "the skeleton as shipped compiles, counts nothing and is judged incorrect"
    for nb in run.rounds:
        # the race: one process per CPU (two at most); the atomic add counts every call, the plain += no more
        text = _text(_tagged(nb, "race"))
        n = {label: int(m.group(1)) for label in ("getppid() calls made", "counted with a plain +=",
                                                    "counted with an atomic add", "lost by the plain +=")
             for m in [re.search(re.escape(label) + r".*?\s(\d+)\s*$", text, re.M)] if m}
        assert len(n) == 4, text
        workers = int(re.search(r"^(\d) process", text, re.M).group(1))
        assert workers == min(2, len(os.sched_getaffinity(0))), text
        assert n["getppid() calls made"] == 200_000 * workers
        assert n["counted with an atomic add"] == n["getppid() calls made"], "an atomic add loses nothing"
        assert 0 <= n["lost by the plain +="] == n["getppid() calls made"] - n["counted with a plain +="], text
        if workers == 1:
            assert n["lost by the plain +="] == 0, "one CPU: the program's runs never overlap"


def test_04_verifier_errors_and_their_logs(runs):
    run = _lesson(runs, "04-verifier-mistakes")
    # verification happens at load: the lesson needs no sandbox (nor CAP_SYS_ADMIN for one)
    assert not any("Sandbox" in c.source for c in run.rounds[0].cells if c.cell_type == "code")
    for nb, s, f in zip(run.rounds, run.summaries, run.facts):
        # each mistake's cell catches the VerifierError it expects and shows it (stderr): no cell raises,
        # so Run All goes on, and each round shows its own error (never one left by an earlier cell)
        for tag in ("verifier-bounds", "verifier-null", "verifier-loop"):
            cell = _tagged(nb, tag)
            assert "raises-exception" not in _tags(cell)
            assert not [o for o in cell.outputs if o.output_type == "error"], (tag, _text(cell))
            shown = [o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
            assert shown and shown[0].startswith("VerifierError: the verifier rejected"), (tag, shown)
        assert f["bounds error"] == f["null error"] == f["loop error"] == "VerifierError"
        assert "invalid access to packet" in f["bounds cause"]
        assert f["loop log lines"] > 1000 and f["loop top insn visits"] > 100
        # 6.18: R1=pkt(r=0); 6.1: R1_w=pkt(off=0,r=0,...); 5.10 prints no per-instruction state: R1(id=0,off=12,r=0)
        assert re.search(r"R1(_w)?=pkt\(|R1\(id=0,off=12,r=0\)", _text(_tagged(nb, "verifier-bounds-log")))
        # the lesson says which limit the unbounded loop meets: the jump-sequence one, not the 1M instructions
        assert "The sequence of 8193 jumps is too complex." in _text(_tagged(nb, "verifier-loop-log"))
        assert "map_value_or_null" in _text(_tagged(nb, "verifier-null-log"))
        # the unfixed programs in the %%bpf cells compile, and their checks say what the verifier refused
        assert {q: set(v) for q, v in s["checks"].items()} == {"q1": {"incorrect"}, "q2": {"incorrect"}}, s["checks"]
        assert "invalid access to packet" in s["messages"]["q1"], s["messages"]["q1"]
        assert "8193 jumps" in s["messages"]["q2"], s["messages"]["q2"]
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}


# ------------------------------------------------------ exercise checkers
def test_checkers_say_incorrect_and_why():
    from labkit import exercises

    me = os.getpid()
    r = exercises.lesson("01").q1.check(lambda df: df[df.pid == me])
    assert r.status == "incorrect" and "kind == 'thread'" in r.message
    r = exercises.lesson("01").q1.check("kind == 'thread'")
    assert r.status == "incorrect" and "other processes" in r.message
    r = exercises.lesson("01").q1.check(lambda df: 42)
    assert r.status == "incorrect" and "not a DataFrame" in r.message
    r = exercises.lesson("03").q1.check(snippet_text("count_getppid").replace("calls", "counts"))
    assert r.status == "incorrect"
    r = exercises.lesson("04").q2.check("verifier_unbounded_loop")
    assert r.status == "incorrect" and "verifier" in r.message
    r = exercises.lesson("00").q1.check("uprobe")
    assert r.status == "incorrect" and "'kprobe' or 'tracepoint'" in r.message
    assert exercises.lesson("02").q1.check(None).status == "not attempted"
    assert not labkit.live_attachments()

# ------------------------------------------------------------ lesson 05
L05 = "05-tracing-user-space"
FIB_CALLS = 1973          # lk_fib(15) calls itself 2 * fib(16) - 1 times
PYTHON = "/usr/bin/python3.11"


def _semaphores(pid: int) -> dict[str, int]:
    """The USDT semaphores of the interpreter in process ``pid`` (non-PIE: the note's addresses are addresses)."""
    from bcc import USDT  # lazy: BCC comes from the distro

    out = {}
    with open(f"/proc/{pid}/mem", "rb") as mem:
        for p in USDT(path=PYTHON).enumerate_probes():
            mem.seek(p.semaphore)
            out[p.short_name()] = int.from_bytes(mem.read(2), "little")
    return out


def test_05_runs_twice_and_gives_everything_back(runs):
    run = _lesson(runs, L05)
    assert len(run.rounds) == 2 and run.summaries[0]["pid"] == run.summaries[1]["pid"]
    for rnd, (nb, s, state) in enumerate(zip(run.rounds, run.summaries, run.state), 1):
        assert _errors(nb) == [], f"round {rnd}: {_errors(nb)}"
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}, s["reference_checked"]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped %%bpf cells are not answers"
        assert all(s["messages"][q].strip() for q in ("q1", "q2"))
        # every probe was detached in the cell that attached it: nothing fires after Run All
        assert state["attachments"] == 0 and state["panels"] == 0 and state["perf events"] == 0, state
        assert state["fds"]["prog"] == state["fds"]["link"] == state["fds"]["perf_event"] == 0, state
    assert run.state[1] == run.state[0]
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit


def test_05_uretprobe_timed_every_call_of_the_child(runs):
    run = _lesson(runs, L05)
    for nb, f in zip(run.rounds, run.facts):
        assert f["usleep calls timed"] == 4 * 300
        low = int(f["fastest bucket (µs)"].split()[0])
        assert low >= 16, "usleep(20) never returns in less than 20 µs: its bucket starts at 16 or above"
        assert "image/png" in _mimes(_tagged(nb, "usleep-latency"))
        assert "no function 'usleeep'" in _text(_tagged(nb, "typo")) and "usleep" in _text(_tagged(nb, "typo"))


def test_05_usdt_counted_the_notebooks_own_python(runs):
    run = _lesson(runs, L05)
    for nb, f in zip(run.rounds, run.facts):
        assert f["python"] == PYTHON
        assert f["python usdt probes"] >= 8     # 3.11: function__entry/return, line, gc__start/done, ...
        assert "python:function__entry" in _text(_tagged(nb, "usdt-probes"))
        assert f["lk_fib calls (BCC, this process)"] == FIB_CALLS
        assert "lk_fib" in _text(_tagged(nb, "usdt-own"))


def test_05_bpftrace_answers_the_same_question_where_installed(runs):
    run = _lesson(runs, L05)
    for nb, f in zip(run.rounds, run.facts):
        got = f["lk_fib calls (bpftrace, a child)"]
        text = _text(_tagged(nb, "bpftrace"))
        if shutil.which("bpftrace"):
            assert got == FIB_CALLS, text
            assert f"lk_fib {FIB_CALLS} times" in text
        else:
            assert got is None and "bpftrace is not installed" in text


def test_05_usdt_semaphores_are_given_back():
    """What the lesson does to its own interpreter — attach line and function__entry, detach — leaves
    the semaphores where they were, in a process of this test's (the lesson's kernel is gone by now)."""
    child = subprocess.Popen([PYTHON, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"     # the interpreter is mapped: its semaphores exist
        before = _semaphores(child.pid)
        with labkit.Lab() as lab:
            lines = lab.attach_usdt("usdt_python_lines", "python:line", "lk_py_line", pid=child.pid)
            during = _semaphores(child.pid)
            lines.detach()
            after = _semaphores(child.pid)
        assert before["python:line"] == 0 and during["python:line"] == 1 and after == before
    finally:
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()


def test_05_notebook_outline():
    nb = nbformat.read(NOTEBOOKS / f"{L05}.ipynb", as_version=4)
    cells = [c for c in nb.cells if "nav" not in c.metadata.get("tags", [])]
    assert "**What you will learn:**" in cells[0].source
    assert cells[1].cell_type == "code" and len(cells[1].source.strip().splitlines()) == 1
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "## Exercise" in text and "## Further reading" in text
    assert sum(c.source.startswith("%%bpf") for c in cells if c.cell_type == "code") >= 3
    for i, c in enumerate(cells):      # each answer cell is followed by its check
        if c.cell_type == "code" and c.source.startswith("%%bpf my_program"):
            assert cells[i + 1].source.strip() in ("ex.q1.check(my_program)", "ex.q2.check(my_program)")
    last = [c for c in cells if c.cell_type == "code"][-1]
    assert "summary" in last.metadata.get("tags", []) and last.source.startswith("ex.summary()")
    assert "lab.close()" in last.source and "Kernel › Shut Down Kernel" in text
    assert not any("ex.record" in c.source for c in cells if c.cell_type == "code")
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


# ------------------------------------------------------------ lesson 06
L06 = "06-maps-in-depth"


def test_06_runs_twice_and_gives_everything_back(runs):
    run = _lesson(runs, L06)
    for rnd, (nb, s, state) in enumerate(zip(run.rounds, run.summaries, run.state), 1):
        assert _errors(nb) == [], f"round {rnd}: {_errors(nb)}"
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}, s["reference_checked"]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped %%bpf cells are not answers"
        assert "lost while two CPUs counted at once" in s["messages"]["q1"], s["messages"]["q1"]
        assert "refuses new keys" in s["messages"]["q2"], s["messages"]["q2"]
        # every program was detached and every buffer closed in the cell that made it
        assert state["attachments"] == 0 and state["panels"] == 0 and state["perf events"] == 0, state
        assert state["fds"]["prog"] == state["fds"]["link"] == state["fds"]["perf_event"] == 0, state
    assert run.state[1] == run.state[0]
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit


def test_06_each_kind_of_map_at_its_limit(runs):
    run = _lesson(runs, L06)
    for nb, f in zip(run.rounds, run.facts):
        assert f["entries before"] == {"small_hash": 0, "small_lru": 0, "small_array": 8}
        held, (hash_refused, lru_refused, array_refused) = f["held"], f["refused"]
        assert held["small_hash"] == list(range(8)) and hash_refused == 12, "a full hash refuses new keys"
        lru = held["small_lru"]
        assert 19 in lru and 0 not in lru and len(lru) <= 8 and lru_refused == 0, "an LRU evicts, never refuses"
        assert held["small_array"] == list(range(8)) and array_refused == 12
        slots = f["per-CPU slots"]
        assert slots[:min(2, f["cpus"])] == [3, 5][:f["cpus"]] and sum(slots) == [3, 8][min(2, f["cpus"]) - 1]
        assert set(f["updates"].values()) == {2000 * 64}
        ns = f["ns per update"]
        assert max(ns["cost_array"], ns["cost_percpu"]) < min(ns["cost_hash"], ns["cost_lru"]), ns
        mem = f["memlock"]
        assert mem["cost_percpu"] > mem["cost_array"], mem
        release = tuple(int(x) for x in os.uname().release.split(".")[:2])
        if (5, 11) <= release < (6, 4):
            assert mem["cost_hash"] == mem["cost_array"], "6.1 charges an estimate: max_entries x (key + value)"
        else:       # 5.10: what the map allocates (a hash's elements and buckets); 6.4 and later: its real usage
            assert mem["cost_hash"] > mem["cost_array"], mem
        assert "image/png" in _mimes(_tagged(nb, "cost"))


def test_06_the_race_and_its_two_fixes(runs):
    run = _lesson(runs, L06)
    for f in run.facts:
        r, workers = f["race"], min(2, f["cpus"])
        made = r["getppid() calls made"]
        assert made == 200_000 * workers
        assert r["__sync_fetch_and_add on a shared entry"] == r["per-CPU +=, copies summed"] == made
        assert r["plain += on a shared entry"] <= made
        assert r["per-CPU, the first CPU's copy alone"] == 200_000
        if workers == 1:
            assert r["plain += on a shared entry"] == made, "one CPU: the program's runs never overlap"


def test_06_perf_buffer_against_ring_buffer(runs):
    run = _lesson(runs, L06)
    for nb, f in zip(run.rounds, run.facts):
        loss = f["loss"]
        sent = loss["records sent"]["perf buffer"]
        assert sent == 5000 * min(2, f["cpus"])
        for b in ("perf buffer", "ring buffer"):
            assert loss["received"][b] + loss["lost"][b] == sent, loss
            assert loss["lost"][b] > sent // 2, "small buffers, nobody reading: most of the burst is lost"
        assert f["perf lost right after the burst"] < loss["lost"]["perf buffer"], \
            "the kernel reports a perf loss with the next record that finds room"
        assert loss["received"]["ring buffer"] > loss["received"]["perf buffer"], "ring records are smaller"
        order, sent = f["order"], f["ordered burst"]
        assert sent == 50_000 * min(2, f["cpus"]) + min(2, f["cpus"])
        for b in ("perf buffer", "ring buffer"):
            assert order["received"][b] + order["lost"][b] == sent, order
        # a late ring record needs two CPUs taking their numbers and places in opposite order, an instant apart:
        # at most 1% here; with both children on their CPUs at once (burst()'s barrier) an emulated guest saw
        # 1.2% (5.10) and 4.5% (6.12), while its perf buffer had 26% late
        assert order["late"]["ring buffer"] <= sent // 10, order
        if f["cpus"] >= 2:
            assert order["late"]["perf buffer"] > 2 * order["late"]["ring buffer"], order
        mem = f["memory"]
        assert mem["perf buffer"] % (257 * 4096) == 0 and mem["ring buffer"] == 512 * 4096, mem
        text = _text(_tagged(nb, "order"))      # the live table (updated while the events flowed) and memory
        assert "late" in text and "one ring, all CPUs" in text, text
        assert "image/png" in _mimes(_tagged(nb, "order"))


# ------------------------------------------------------------ lesson 09
L09 = "09-modern-toolchain"


def test_09_runs_twice_and_gives_everything_back(runs):
    run = _lesson(runs, L09)
    for rnd, (nb, s, state) in enumerate(zip(run.rounds, run.summaries, run.state), 1):
        assert _errors(nb) == [], f"round {rnd}: {_errors(nb)}"
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}, s["reference_checked"]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped starters are not answers"
        assert all(s["messages"][q].strip() for q in ("q1", "q2"))
        # what stays is the last %%bpf my_program --core object: one program on one bpf_link (libbpf
        # attaches a tracepoint through a perf event, which the link holds); before 5.15 the kernel has
        # no link for perf events, and libbpf holds the perf event itself (PERF_EVENT_IOC_SET_BPF)
        assert state["attachments"] == 1 and state["panels"] == 0 and state["perf events"] == 1, state
        links = 1 if _kernel_at_least(5, 15) else 0
        assert state["fds"] == {"prog": 1, "link": links, "perf_event": 1}, state
    assert run.state[1] == run.state[0]
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit


def test_09_bpftool_shows_the_labs_own_program(runs):
    run = _lesson(runs, L09)
    for nb, f in zip(run.rounds, run.facts):
        assert f"{f['bcc prog id']}: tracepoint  name lk_exec_parent" in f["prog show"]
        assert f["map dump has entries"] and f["xlated instructions"] >= 10
        # Debian 12's bpftool 7.1 has no libbfd; a bpftool with it disassembles (then it prints instructions)
        assert f["jited dump"] == "Error: No libbfd support" or f["jited dump"].strip(), f["jited dump"]
        assert f["jit bytes"] == f["jited size"] > 0 and f["asm lines"] >= 10
        # the prose: near the top, a nop the kernel can patch (5 bytes on x86-64, 4 on arm64)
        nops = [l for l in f["asm head"] if re.search(r"\bnop", l)]
        # a 5-byte nop: 0f 1f 44 00 00 ("nopl"), or 66 66 66 66 90 (before 5.13, by CPU model: 5.10 under qemu; objdump: "data16 ... xchg %ax,%ax")
        nops += [l for l in f["asm head"] if l.startswith("66 66 66 66 90")]
        assert nops, f["asm head"]
        if os.uname().machine == "x86_64":
            assert any(l.startswith(("0f 1f 44 00 00", "66 66 66 66 90")) for l in nops), nops



def test_09_btf_offsets_are_what_libbpf_relocated_and_core_is_right(runs):
    run = _lesson(runs, L09)
    for nb, f in zip(run.rounds, run.facts):
        assert f["vmlinux lines"] > 10000 and "/.cache/labkit/core/btf-" in f["vmlinux path"]
        assert f["relocated"] == {"real_parent": True, "tgid": True}, f["offsets"]
        assert f["kids"] == 12 and f["core right"] == 12
        # BCC is right exactly when it compiled with the running kernel's own headers (the prose says so)
        assert (f["bcc right"] == 12) == f["headers match"], (f["bcc right"], f["headers match"])
        assert f["tp_btf parent"] == f["me"]
        if not f["headers match"]:      # the lab VM: BCC compiled 6.1's offsets into a 6.18 kernel's program
            assert f["offsets"]["real_parent"] not in f["bcc adds"] and len(f["bcc adds"]) >= 2, f["bcc adds"]
        text = _text(_tagged(nb, "compare"))
        assert f"CO-RE read the right parent 12 times of 12, BCC {f['bcc right']} times" in text


def test_09_fentry_is_loaded_or_refused_and_says_which(runs):
    run = _lesson(runs, L09)
    for nb, f in zip(run.rounds, run.facts):
        assert f["fentry"] in ("loaded and attached", "refused: NotSupportedError", "refused: AttachError"), f["fentry"]
        if os.uname().release.startswith("6.18"):      # the lab VM's kernel, as the prose says
            assert f["fentry"] == "refused: NotSupportedError"
        if os.uname().release.startswith("6.1.0-") and os.uname().release.endswith("-amd64"):
            assert f["fentry"] == "loaded and attached", "the prose: Debian 12's own 6.1 kernel attaches fentry"
        if os.uname().release.startswith("6.1.0-") and os.uname().release.endswith("-arm64"):
            # the prose: arm64's 6.1 loads it (the verifier accepted it) but cannot attach it (no direct calls)
            assert f["fentry"] == "refused: AttachError", f["fentry"]
            assert "cannot attach lk_fentry_unlink" in _text(_tagged(nb, "fentry")), _text(_tagged(nb, "fentry"))
        text = _text(_tagged(nb, "fentry"))
        assert f"fentry on kernel {os.uname().release}: {f['fentry']}" in text


def test_09_core_relocates_a_struct_of_our_own_and_picks_the_member_this_kernel_has(runs):
    run = _lesson(runs, L09)
    for nb, f in zip(run.rounds, run.facts):
        # compiled at 0 and 8 (the flavor's own layout), relocated to this kernel's BTF offsets (the table's)
        assert f["flavors moved"] == {"tgid": [0, f["offsets"]["tgid"], True],
                                      "real_parent": [8, f["offsets"]["real_parent"], True]}, f["flavors moved"]
        assert f["offsets"]["tgid"] != 0 and f["offsets"]["real_parent"] != 8   # so something really moved
        assert f["flavors parent"] == f["true parent"]
        # the prose: task_struct's state became __state in 5.14; bpf_core_field_exists chose at load time
        assert f["state member"] == ("__state" if _kernel_at_least(5, 14) else "state")
        assert f["state value"] == 0, "TASK_RUNNING while it makes the call"
        text = _text(_tagged(nb, "core-flavors"))
        assert "compiled at byte 0, relocated to byte" in text and "NOT in" not in text, text


def test_09_bpf_loop_sums_what_the_verifier_could_not_walk_or_says_it_needs_5_17(runs):
    run = _lesson(runs, L09)
    for nb, f in zip(run.rounds, run.facts):
        text = _text(_tagged(nb, "bpf-loop"))
        if _kernel_at_least(5, 17):
            assert f["bpf_loop total"] == 99_999 * 100_000 // 2 == 4_999_950_000, (f["bpf_loop total"], text)
            assert "bpf_loop added 0 .. 99,999: 4,999,950,000" in text, text
        else:   # the prose: bpf_loop came in 5.17; the cell says so instead of a traceback
            assert f["bpf_loop total"] is None and "refused bpf_loop(): it came in 5.17" in text, text


# ------------------------------------------------------------------ lesson 07
L07 = "07-xdp-beyond-drop"


def test_07_runs_twice_and_gives_everything_back(runs):
    run = _lesson(runs, L07)
    for rnd, (nb, s, state) in enumerate(zip(run.rounds, run.summaries, run.state), 1):
        assert _errors(nb) == [], f"round {rnd}: {_errors(nb)}"
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}, s["reference_checked"]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped %%bpf cells are not answers"
        assert "checksum" in s["messages"]["q1"], s["messages"]["q1"]
        assert "no rule ever matched" in s["messages"]["q2"], s["messages"]["q2"]
        assert state["sandboxes"] == 1, state                  # one far sandbox, re-run replaces it
    assert run.state[1] == run.state[0]
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit


def test_07_xdp_tx_answers_and_the_stacks_counters_prove_it(runs):
    run = _lesson(runs, L07)
    for nb, f in zip(run.rounds, run.facts):
        assert f["far before"] == [2, 0] and f["forwarding"] == "off"
        assert f["tx ping"] == [5, 5], "ping (a raw socket) counts the replies"
        assert f["tx host"].get("InCsumErrors") == 5 and f["tx host"].get("InMsgs") == 5
        assert f["tx host"].get("InEchoReps", 0) == 0, "the host's kernel accepted none (bad checksum)"
        assert set(f["tx target"].values()) <= {0}, "the target's stack saw nothing"
        assert f["native alone"] == 0 and f["native with peer"] == 3


def test_07_redirect_crosses_a_middle_that_does_not_forward(runs):
    run = _lesson(runs, L07)
    for f in run.facts:
        assert f["routed"] == [5, 5]
        assert f["redirected"] == 10
        assert f["middle received"] == 0 and f["middle forwarded"] == 0
        assert f["after detach"] == 0
        assert len(f["devmap"]) == 2 and 0 not in f["devmap"][:2]


def test_07_aborted_is_reported_by_the_tracepoint(runs):
    run = _lesson(runs, L07)
    for f in run.facts:
        assert f["udp to 4242"] == 0 and f["udp elsewhere"] == 5
        assert f["exceptions"] == {"XDP_ABORTED": 5}
        assert f["exception ifindex"][0] == f["exception ifindex"][1]


def test_07_firewall_blocks_by_longest_prefix_while_traffic_runs(runs):
    run = _lesson(runs, L07)
    for nb, f in zip(run.rounds, run.facts):
        assert f["fw steps"] == {"nothing blocked": 20, "host's address blocked (/32)": 0, "and its /30": 0,
                                 "/30 only": 0, "nothing blocked again": 20}
        (plen32, drops32), (plen30, drops30) = f["fw both blocked"]
        assert (plen32, plen30) == (32, 30) and drops30 == 0, "the longest match counts, one entry per lookup"
        assert drops32 >= 40, "the UDP dropped by the /32 alone and with the /30 (and pings meanwhile)"
        c = f["fw counters"]
        assert c["drop udp"] == 60 and c["pass udp"] == 40
        assert c.get("drop icmp", 0) + c.get("pass icmp", 0) == 20, "the background pings' requests"
        assert f["fw blocked now"] == 0 and f["control after run all"] == 0
        assert "application/vnd.jupyter.widget-view+json" in _mimes(_tagged(nb, "firewall"))
        snap = [o for o in _tagged(nb, "firewall-snapshot").outputs if "text/html" in o.get("data", {})][-1]
        assert "data:image/png;base64," in snap.data["text/html"] and "drop" in snap.data["text/html"]


# ------------------------------------------------------------------ lesson 08
L08 = "08-tc"


def test_08_runs_twice_and_gives_everything_back(runs):
    run = _lesson(runs, L08)
    assert run.summaries[0]["pid"] == run.summaries[1]["pid"]
    for rnd, (nb, s, state) in enumerate(zip(run.rounds, run.summaries, run.state), 1):
        assert _errors(nb) == [], f"round {rnd}: {_errors(nb)}"
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}, s["reference_checked"]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped %%bpf cells are not answers"
        assert all(s["messages"][q].strip() for q in ("q1", "q2"))
        # every program was detached in the cell that attached it; the sandbox stays until the kernel stops
        assert state["attachments"] == 0 and state["panels"] == 0 and state["sandboxes"] == 1, state
        assert state["fds"]["link"] == 0, state
    assert run.state[1] == run.state[0]
    assert run.facts[0]["sandbox"] != run.facts[1]["sandbox"], "round 2 made its own sandbox"
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit


def test_08_xdp_runs_before_tc_ingress_and_tc_sees_egress(runs):
    """What the prose says: every ping left through TC egress, XDP dropped each one, TC ingress saw
    none; UDP was counted at all three hooks, the same number at each."""
    run = _lesson(runs, L08)
    for nb, f in zip(run.rounds, run.facts):
        seen = f["seen"]
        assert f["pings"] == 6 and f["udp received"] == 12
        assert seen["host: TC egress"]["icmp"] == 6 and seen["target: XDP"]["icmp"] == 6
        assert seen["target: TC ingress"]["icmp"] == 0
        assert {hook: c["udp"] for hook, c in seen.items()} == dict.fromkeys(seen, 12)
        assert set(f["vias"]) <= {"tcx", "netlink"} and len(set(f["vias"])) == 1
        text = _text(_tagged(nb, "paths"))
        assert f"via {f['vias'][0]}" in text and "6 drop" in text and "12 ok" in text


def test_08_rewrite_is_seen_and_a_wrong_checksum_is_dropped(runs):
    run = _lesson(runs, L08)
    for nb, f in zip(run.rounds, run.facts):
        assert f["ttl before"] == [64, 64, 64]
        assert f["ttl after"] == [7, 7, 7] and f["ttl rewritten"] >= 3
        assert f["ttl without checksum"] == [] and f["checksum errors counted"] == 3
        assert "0 of 3" in _text(_tagged(nb, "no-csum"))


def test_08_starters_are_judged_with_a_reason(runs):
    run = _lesson(runs, L08)
    for s in run.summaries:
        assert "datagrams to UDP port 4444 left the host" in s["messages"]["q1"]
        assert "the receiver saw DSCP 16" in s["messages"]["q2"]


# ------------------------------------------------------------ lesson 10
L10 = "10-profiling"


def test_10_runs_twice_and_gives_everything_back(runs):
    run = _lesson(runs, L10)
    for rnd, (nb, s, state) in enumerate(zip(run.rounds, run.summaries, run.state), 1):
        assert _errors(nb) == [], f"round {rnd}: {_errors(nb)}"
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}, s["reference_checked"]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped %%bpf cells are not answers"
        assert "no key of 'counts' is a stack the map 'stacks' holds (the keys: 0)" in s["messages"]["q1"]
        assert "the map 'offcpu' stayed empty" in s["messages"]["q2"], s["messages"]["q2"]
        # the profiler and the off-CPU tracer were detached in their cells; what stays attached is the q2
        # starter, a TRACEPOINT_PROBE that its %%bpf cell attached (one perf event on sched_switch)
        assert state["attachments"] == 1 and state["panels"] == 0 and state["perf events"] == 1, state
    assert run.state[1] == run.state[0]
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit


def test_10_samples_follow_the_cpu_time_of_both_threads(runs):
    run = _lesson(runs, L10)
    for nb, f in zip(run.rounds, run.facts):
        assert f["flags"] == ["-O0", "-g", "-fno-omit-frame-pointer"]
        assert "clang -O0 -g -fno-omit-frame-pointer" in _text(_tagged(nb, "workload"))
        expected = 99 * f["on cpu"]
        assert 0.5 * expected - 5 <= f["samples"] <= 1.5 * expected + 5, f
        assert set(f["threads"]) == {"main", "lk_worker"} and all(n > 0 for n in f["threads"].values()), f
        assert f["main tid is the pid"]
        assert f["kernel -14 share"] >= 0.6, f            # "-14 for most samples" (0.8 on 6.1 under TCG)
        assert "image/png" in _mimes(_tagged(nb, "profile"))


def test_10_stacks_are_named_from_libc_to_the_leaf(runs):
    run = _lesson(runs, L10)
    for nb, f in zip(run.rounds, run.facts):
        names = f["symbolised"]
        # the C library's internal functions: named where its debug symbols are installed (libc6-dbg)
        assert names[0] in ("start_thread [libc.so.6]", "__libc_start_call_main [libc.so.6]",
                            "[unknown] [libc.so.6]"), names
        assert names[1] in ("lk_worker [lk_busy]", "main [lk_busy]") and names[2] == "lk_stages [lk_busy]", names
        assert names[-1] == "lk_mix [lk_busy]", names
        assert {"tid", "user_stack_id", "kernel_stack_id", "stack", "value"} <= set(f["stack columns"])


def test_10_the_leaf_says_lk_mix_and_one_level_in_says_lk_compress(runs):
    run = _lesson(runs, L10)
    for nb, f in zip(run.rounds, run.facts):
        # "the leaf says lk_mix" (the rest: the clock lk_busy reads between rounds, in its C library)
        assert f["leaf top"] == "lk_mix" and f["leaf share"] >= 0.8, f
        shares = f["stage shares"]
        assert max(shares, key=shares.get) == "lk_compress", shares
        assert 0.5 <= shares["lk_compress"] <= 0.8, shares          # "about 2/3"
        assert f["folded total"] == f["samples"] and f["folded head"].endswith(";lk_compress;lk_mix"), f
        assert "image/png" in _mimes(_tagged(nb, "flame-graph"))


def test_10_off_cpu_time_is_where_the_waiter_waited(runs):
    run = _lesson(runs, L10)
    for nb, f in zip(run.rounds, run.facts):
        rows = f["waits"]
        wait = max((r for r in rows if r[0].endswith("main → lk_wait_input")), key=lambda r: r[1])
        naps = [r for r in rows if r[0].endswith("main → lk_nap")]
        nap = max(naps, key=lambda r: r[1])
        assert 390 <= wait[1] <= 900, rows        # "waited 0.4 s", the time the cell held its input back
        # "0.1 s, its ten naps": all of lk_nap's rows (a nap can leave the CPU on another kernel path, as the
        # timer interrupt's preemption: one run had 94.1 ms on nanosleep's stack and the rest on another). One
        # CI run under the suite's load had 90.8 ms, nine naps: where the tenth went is not known yet, so the
        # message lists every row (user stack, ms)
        assert 85 <= sum(r[1] for r in naps) <= 400, [(r[0], r[1]) for r in rows]
        assert sum(r[1] for r in rows if "lk_think" in r[0]) < 50, rows     # "absent or nearly so"
        assert "__schedule" in wait[2] and any("read" in k for k in wait[2]), wait
        assert "__schedule" in nap[2] and any("nanosleep" in k for k in nap[2]), nap
        assert "image/png" in _mimes(_tagged(nb, "offcpu-flame"))
# ---------------------------------------------------------------- lesson 11
L11 = "11-latency"
_FENTRY_HOOK, _KPROBE_HOOK = "fentry/fexit on do_nanosleep", "kprobe/kretprobe on do_nanosleep"
_TRACEPOINT_HOOK = "tracepoints syscalls:sys_enter_clock_nanosleep, sys_exit_clock_nanosleep"


def test_11_takes_the_hook_the_kernel_allows_and_says_which(runs):
    run = _lesson(runs, L11)
    release = os.uname().release
    for nb, f in zip(run.rounds, run.facts):
        text = _text(_tagged(nb, "hooks"))
        assert f"timing with {f['hook']} on kernel {release}" in text
        order = [_FENTRY_HOOK, _KPROBE_HOOK, _TRACEPOINT_HOOK]
        # every hook before the one taken was tried and refused, and said so
        assert [t[0] for t in f["tried"]] == order[:order.index(f["hook"])], f["tried"]
        for what, error in f["tried"]:
            assert f"not {what}: {error}:" in text
        if release.startswith("6.18"):     # the lab VM's kernel, as the prose says: neither fentry nor kprobes
            assert f["hook"] == _TRACEPOINT_HOOK and f["tried"] == [[_FENTRY_HOOK, "NotSupportedError"],
                                                                    [_KPROBE_HOOK, "NotSupportedError"]]
            assert not KPROBES
        if release.startswith("6.1.0-") and release.endswith("-amd64"):    # the prose: Debian's 6.1 on x86-64
            assert f["hook"] == _FENTRY_HOOK, f["tried"]
        if release.startswith("6.1.0-") and release.endswith("-arm64"):    # loads fentry, cannot attach it
            assert f["hook"] == _KPROBE_HOOK, f["tried"]


def test_11_every_sleep_timed(runs):
    run = _lesson(runs, L11)
    from labkit.exercises.lessons.lesson11 import log2_bucket
    for f in run.facts:
        assert f["asked ms"] == [1.5, 6, 24]
        # "All 60 calls are there"; the requests' own buckets 11, 13, 15 (1024-2047, 4096-8191, 16384-32767 us)
        assert f["slept"] == 60, f
        assert [log2_bucket(int(ms * 1000)) for ms in f["asked ms"]] == [11, 13, 15]
        assert [((1 << k) >> 1, (1 << k) - 1) for k in (11, 13, 15)] == [(1024, 2047), (4096, 8191), (16384, 32767)]


def test_11_per_process_per_syscall_counts_are_exact(runs):
    run = _lesson(runs, L11)
    for f in run.facts:
        calls = f["per syscall"]
        poll = "poll" if f["machine"] != "aarch64" else "ppoll"     # arm64 has no poll syscall: Python calls ppoll
        assert calls["sleeper clock_nanosleep"] == 40 and calls["sleeper getppid"] == 300, calls
        assert calls[f"poller {poll}"] == 20 and calls["poller getppid"] == 300, calls


def test_11_run_queue_latency_and_what_each_mistake_measures(runs):
    run = _lesson(runs, L11)
    for f in run.facts:
        q = f["runq"]
        right, prev = q["wakeup → runs (next_pid)"], q["wakeup → switched out (prev_pid)"]
        # "one per wakeup, at most 61: the 60 sleeps and the line that told the worker to start"; and the
        # switch-out column "at most 61 counts too" (not more than the right one's: on 6.12 under TCG the last
        # switch-out came after the map was read, 61 against 60)
        assert 50 <= right <= 61 and 50 <= prev <= 61, q
        assert q["start never deleted"] > right, q          # the work was cut: each switch back in counted again
        assert 50 <= q["wakeup → next wakeup"] <= 60, q      # the first wakeup has no previous one
        assert q["every thread (no filter)"] > right, q


def test_11_prose_numbers_are_the_checkers_and_the_kernels():
    from labkit.exercises.lessons import lesson11 as l11
    nb = nbformat.read(NOTEBOOKS / f"{L11}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert f"sleeps 1 ms and then works {l11.SPIN_MS} ms, {l11.WAKEUPS} times" in text
    assert (f"sleeps {l11.SHORT[0]} ms {l11.SHORT[1]} times while a second thread sleeps {l11.LONG[0]} ms "
            f"{l11.LONG[1]} times") in text
    assert f"with a {l11.POLLS[0]} ms timeout {l11.POLLS[1]} times" in text
    tasks = l11.build()
    assert f"works {l11.SPIN_MS} ms, {l11.WAKEUPS} times" in tasks.q1.task
    # "the timer's slack (50 us for an ordinary process)": this process's, as the kernel gives it
    assert int(open("/proc/self/timerslack_ns").read()) == 50_000


# ------------------------------------------------------------ lesson 12
L12 = "12-security"
LSM_OK, LSM_WHY = _lsm.available()


def test_12_runs_twice_says_what_the_kernel_lacks_and_gives_everything_back(runs):
    run = _lesson(runs, L12)
    for nb, s, f, state in zip(run.rounds, run.summaries, run.facts, run.state):
        assert f["lsm ok"] == LSM_OK and f["lsm why"] == LSM_WHY
        errors = [(tags, e) for _i, tags, e in _errors(nb)]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped starters are not answers"
        if LSM_OK:
            assert errors == [], errors
            assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}
            # what stays: the two policy programs and q2's starter (%%bpf my_program: it replaced q1's), one LSM
            # attachment each, and the sandbox; the machine-wide program was detached by the guard, and the
            # checkers' programs and cgroups were given back
            assert state["attachments"] == 3 and state["cgroups"] == 1, state
            assert f["machine_wide left"] == []
        else:
            # the four %%bpf cells with LSM_PROBE say why, without a traceback; nothing else fails
            assert [e for _t, e in errors] == ["NotSupportedError"] * 4, errors
            assert all("raises-exception" in t for t, _e in errors)
            for cell in [c for c in nb.cells if "raises-exception" in _tags(c)]:
                assert "Traceback" not in _text(cell) and "BPF LSM" in _text(cell), _text(cell)
            assert "not run: " + LSM_WHY in _text(_tagged(nb, "deny-exec"))
            assert "NotSupportedError" in s["messages"]["q1"] and "BPF LSM" in s["messages"]["q1"]
            assert state["attachments"] == 0 and state["cgroups"] == 1, state
    assert run.state[1] == run.state[0]
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit
    paths = [f["sandbox"] for f in run.facts]
    assert paths[0] != paths[1] and not any(os.path.exists(p) for p in paths)


def test_12_the_threat_model_is_this_kernels(runs):
    run = _lesson(runs, L12)
    for nb, f in zip(run.rounds, run.facts):
        caps = dict(zip(f["caps"]["capability"], f["caps"]["this process has it"]))
        # "this notebook's kernel has all four" (the lab runs as root)
        assert caps == {"CAP_BPF": True, "CAP_PERFMON": True, "CAP_NET_ADMIN": True, "CAP_SYS_ADMIN": True}
        assert f["unpriv"] == int(open("/proc/sys/kernel/unprivileged_bpf_disabled").read())
        # "with the value at 1 or 2, nobody is refused with EPERM and root gets its map; at 0 both would get one"
        assert f["asked"]["root"].startswith("a map (fd ")
        if f["unpriv"] in (1, 2):
            assert f["asked"]["nobody"] == "refused: Operation not permitted (errno 1)", f["asked"]
        else:
            assert f["asked"]["nobody"].startswith("a map (fd "), f["asked"]
        assert f"unprivileged_bpf_disabled = {f['unpriv']}: " in _text(_tagged(nb, "unprivileged"))


def test_12_the_kernels_claims():
    # "Debian's 6.1 and 6.12 build bpf into their list; Debian 11's 5.10 does not": where the run is on one of
    # them (tests/stock_kernel/run), its config says so
    lsms, where = _lsm.active_lsms(securityfs=Path("/nonexistent"), cmdline="")
    rel = os.uname().release
    if rel.endswith("-amd64") or rel.endswith("-arm64"):
        if rel.startswith(("6.1.", "6.12.")):
            assert "bpf" in lsms, (rel, lsms, where)
        elif rel.startswith("5.10."):
            assert "bpf" not in lsms, (rel, lsms, where)
    if not LSM_OK:
        assert any(w in LSM_WHY for w in ("bpf is not among this kernel's LSMs", "refuses BPF LSM programs",
                                          "attached but never ran")), LSM_WHY


def test_12_an_lsm_program_refuses_in_the_sandbox_only(runs):
    run = _lesson(runs, L12)
    for f in run.facts:
        if not LSM_OK:
            assert f["execs"] is None and f["guarded"] is None
            continue
        # the prose: EPERM in the sandbox, once; the same tool from outside and another program inside ran
        assert f["execs"]["what happened"] == ["EPERM (errno 1)", "worked", "worked"], f["execs"]
        assert f["exec refusals"] == 1
        # by either name the sandbox's open failed with EPERM, twice; outside and other files opened
        said = f["opens"]["what happened"]
        assert all(x.startswith("PermissionError: [Errno 1] Operation not permitted") for x in said[:2]), said
        assert said[2:] == ["worked", "worked"], said
        assert f["open refusals"] == 2
        # the guard: detached at once, having refused the secret to this notebook
        kind, refused, ms = f["guarded"]
        assert kind == "MachineWideError" and [(r["act"], r["errno"]) for r in refused] == [("open", 1)]
        assert refused[0]["path"].endswith("/secret") and 0 < ms < 10_000


# ------------------------------------------------------------ lesson 13
L13 = "13-cgroup-programs"


def test_13_runs_twice_and_gives_its_cgroups_back(runs):
    run = _lesson(runs, L13)
    for rnd, (nb, s, state) in enumerate(zip(run.rounds, run.summaries, run.state), 1):
        # the one error is the one the lesson shows: the root of the v2 tree refused without force=True
        assert [(tags, e) for _i, tags, e in _errors(nb)] == [(["root-refused", "raises-exception"], "AttachError")]
        refused = _text(_tagged(nb, "root-refused"))
        assert "root of the cgroup v2 hierarchy" in refused and "force=True" in refused, refused
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}, s["reference_checked"]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped starters are not answers"
        # what stays: the connect4 program on a and the counter on both sides of lk13-demo, each on a
        # bpf_link, and the one cgroup (the first round's was given back when the second made its own)
        assert state["attachments"] == 3 and state["cgroups"] == 1, state
        assert state["fds"]["link"] == 3, state
    assert run.state[1] == run.state[0]
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit
    paths = [f["demo path"] for f in run.facts]
    assert paths[0] != paths[1] and not any(os.path.exists(p) for p in paths), "a new name each round, both gone"


def test_13_the_hierarchy_and_the_lab_cgroups(runs):
    run = _lesson(runs, L13)
    for nb, f in zip(run.rounds, run.facts):
        # the prose: cgroup2fs where the unified hierarchy is at /sys/fs/cgroup, tmpfs where v1 trees are there
        assert (f["fs type"] == "cgroup2fs") == (f["root"] == "/sys/fs/cgroup"), (f["fs type"], f["root"])
        assert f["fs type"] in ("cgroup2fs", "tmpfs")
        if f["fs type"] == "tmpfs":
            assert f["root"] in ("/sys/fs/cgroup/unified", "/run/labkit/cgroup2")
        cg = f["cgroups"]
        name = os.path.basename(f["demo path"])
        assert cg["cgroup"] == ["lk13-demo", "a", "b"] and len(set(cg["id"])) == 3
        assert cg["a child started in it says"] == [f"0::/{name}", f"0::/{name}/a", f"0::/{name}/b"]
        assert f"the cgroup v2 hierarchy is mounted at {f['root']}" in _text(_tagged(nb, "hierarchy"))


def test_13_connect4_refuses_cgroup_a_only(runs):
    run = _lesson(runs, L13)
    for f in run.facts:
        # the prose: a got EPERM (errno 1), b and outside connected; the program was asked once and refused once
        assert f["connects"] == ["PermissionError (errno 1)", "connected", "connected"], f["connects"]
        assert f["verdicts"] == {"let through": 0, "refused": 1}


def test_13_cgroup_skb_counts_each_cgroups_bytes(runs):
    run = _lesson(runs, L13)
    for nb, f in zip(run.rounds, run.facts):
        t, rounds = f["traffic"], f["rounds"]
        assert f["sends"] == {"a": 100_000, "b": 30_000} and rounds == 5 and sorted(t) == ["a", "b"]
        for name in ("a", "b"):
            sent, back = rounds * f["sends"][name], rounds * f["sends"][name] // 2
            row = t[name]
            # the prose: the data, 40 to 60 bytes of headers a packet and, on a slow machine, a segment sent again
            # (a retransmission is counted twice: at most a tenth more here); few packets (64 KiB each on loopback)
            for data, d in ((sent, "egress"), (back, "ingress")):
                extra = row[f"{d} bytes"] - data
                assert 40 * row[f"{d} packets"] <= extra <= 60 * row[f"{d} packets"] + data // 10, (name, d, row)
                assert row[f"{d} packets"] < data / 1000
        assert 0.28 < t["b"]["egress bytes"] / t["a"]["egress bytes"] < 0.32    # "at 30 % of the size"
        assert "image/png" in _mimes(_tagged(nb, "plot"))


def test_13_cgroup_skb_drops_bs_datagram(runs):
    run = _lesson(runs, L13)
    for f in run.facts:
        assert f["udp sends"] == {"a": "sent", "b": "PermissionError (errno 1)"} and f["arrived"] == ["hello"]
        assert f["dropper"] == "detached"


# ------------------------------------------------------------ lesson 14
L14 = "14-libbpf-application"


def test_14_runs_twice_and_gives_its_pins_back(runs):
    from labkit.programs.pins import RECORDS as PIN_RECORDS

    run = _lesson(runs, L14)
    for nb, s, state in zip(run.rounds, run.summaries, run.state):
        assert not _errors(nb), _errors(nb)
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}, s["reference_checked"]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped starters are not answers"
        # the tool's programs went with its process: the kernel holds no program, link or attachment
        assert state["attachments"] == 0 and state["fds"]["prog"] == 0 and state["fds"]["link"] == 0, state
    assert run.state[1] == run.state[0]
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [], "owned cgroups": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit
    paths = [f["pins path"] for f in run.facts]
    assert paths[0] != paths[1] and not any(os.path.exists(p) for p in paths), "a new directory each round, both gone"
    assert not [r for r in PIN_RECORDS.records() if r.get("pid") == run.pid]


def test_14_the_application_its_skeleton_and_its_records(runs):
    run = _lesson(runs, L14)
    for nb, f in zip(run.rounds, run.facts):
        # the skeleton's struct: a field per map, program, link, and the read-only global
        for field in ("*events;", "*opens;", "*stages;", "*lk_openat;", "*lk_depth;", "__u32 target_tgid;", "*rodata;"):
            assert field in f["struct"], field
        for events in (f["events"], f["events2"]):
            # four opens, one record each, in order, from one process (pid == tid: its main thread)
            assert events["filename"] == f["paths"] and len(set(events["pid"])) == 1
            assert events["pid"] == events["tid"]
            if f["has loop"]:     # "The depth of /usr/share/common-licenses/GPL-3 is 4": lk_depth counted every /
                assert events["depth"] == [p.count("/") for p in f["paths"]] == [2, 2, 4, 5]
                assert events["stage"] == [1, 1, 1, 1]
            else:                 # no bpf_loop: lk_openat's fall-through, depth -1
                assert events["depth"] == [-1] * 4 and events["stage"] == [0] * 4
        assert f["has loop"] == _kernel_at_least(5, 17)
        assert f"bpf_loop {'yes' if f['has loop'] else 'no'}" in f["ready"][0]
        assert f["ready"][0].endswith(f"pinned {f['pins path']}/opens")
        text = _text(_tagged(nb, "loop"))
        assert ("has bpf_loop()" in text) == f["has loop"] and "Traceback" not in text
        # "at most 33 in a row (since 5.17; older kernels stopped at 32 or 33 ...)", and then XDP_PASS (2)
        jumps, verdict = f["jumps"]
        assert (jumps == 33 if _kernel_at_least(5, 17) else jumps in (32, 33)) and verdict == 2, f["jumps"]


def test_14_the_pinned_map_goes_on_counting(runs):
    run = _lesson(runs, L14)
    for nb, f in zip(run.rounds, run.facts):
        assert "image/png" in _mimes(_tagged(nb, "plot"))
        # "printed 4 records, and read 8 in opens: the first run's 4 and its own"
        assert f["counted"] == [4, 8] and f["tool runs"]["records"] == [4, 4]
        assert f["shared"]["pinned here"] == ["opens"] and f["shared"]["opens"] == 8
