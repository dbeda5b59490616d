"""The kernel matrix's table: lesson x kernel, read from each run's junit.xml.

    python matrix_table.py OUT.md KERNEL=RUN_DIR[,RUN_DIR...] ... [--readme README.md]

Each RUN_DIR is one `tests/stock_kernel/run --kernel=KERNEL` result directory
(several, comma-separated, are merged: a test's last outcome counts)
(junit.xml, summary.txt, manifest of the image it booted). A lesson's cell
says "passed" when every test that belongs to it passed (its notebook run
twice, its own assertions, its exercise catalogue), names the tests that
failed otherwise, and adds the reason of each skip (what the kernel lacks).
Tests that belong to no lesson (clone tracing, XDP, sandbox, TC links, ...)
make the "kernel tests" row. With --readme the table replaces the one between
README's ``<!-- matrix:start -->`` and ``<!-- matrix:end -->`` markers, so the
README's claims are the matrix run's, never written by hand.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Case", "lesson_of", "read_cases", "read_console", "table", "main"]

LESSONS = [f"{n:02d}" for n in range(15)]
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"


@dataclass
class Case:
    name: str                 # tests/test_x.py::test_y[param]
    outcome: str              # passed | failed | skipped
    reason: str = ""          # a skip's or failure's first line


def lesson_of(name: str) -> str:
    """Which lesson a test belongs to ("" for none): its file
    (test_exercises_NN.py), its parameter ([NN-name]) or its name (test_NN_...)."""
    m = re.search(r"test_exercises_(\d\d)\.py", name)
    if m:
        return m.group(1)
    m = re.search(r"\[(\d\d)-[a-z]", name)
    if m:
        return m.group(1)
    m = re.search(r"::test_(\d\d)_", name)
    if m:
        return m.group(1)
    return ""


def read_cases(junit: Path) -> list[Case]:
    cases = []
    for tc in ET.parse(junit).getroot().iter("testcase"):
        cls = tc.get("classname", "")
        path = cls.replace(".", "/") + ".py"
        name = f"{path}::{tc.get('name')}"
        outcome, reason = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = tc.find(tag)
            if el is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                reason = (el.get("message") or el.text or "").strip().splitlines()[0:1]
                reason = reason[0] if reason else ""
                break
        cases.append(Case(name, outcome, reason))
    return cases


# xdist: "[gw0] [ 67%] FAILED tests/x.py::name"; one process: "tests/x.py::name PASSED [ 72%]"
_CONSOLE = re.compile(r"(?:(PASSED|FAILED|ERROR|SKIPPED)\s+(tests/\S+::\S+))|(?:^(tests/\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED)\b)",
                      re.M)


def read_console(console: Path) -> list[Case]:
    """The outcomes pytest printed on a guest's console (``-v``, with or without xdist), for a run
    that never wrote its junit.xml (stopped before the end); a test's last outcome counts."""
    seen: dict[str, Case] = {}
    for m in _CONSOLE.finditer(console.read_text(errors="replace")):
        word, name = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        outcome = {"PASSED": "passed", "SKIPPED": "skipped"}.get(word, "failed")
        seen[name] = Case(name, outcome, "" if outcome == "passed" else f"{word.lower()} (from the console)")
    return list(seen.values())


@dataclass
class Run:
    kernel: str
    release: str = ""
    cases: list[Case] = field(default_factory=list)
    steps: dict[str, str] = field(default_factory=dict)   # summary.txt: step -> ok/FAIL/skip
    reported: bool = False


def _read_run(kernel: str, run_dir: Path) -> Run:
    run = Run(kernel)
    junit = run_dir / "junit.xml"
    if junit.is_file():
        try:
            run.cases = read_cases(junit)
            run.reported = True
        except ET.ParseError:
            pass
    elif (run_dir / "console.log").is_file():      # a run cut short: what pytest said of each test so far
        run.cases = read_console(run_dir / "console.log")
        run.reported = bool(run.cases)
    summary = run_dir / "summary.txt"
    if summary.is_file():
        for line in summary.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                run.steps[parts[0]] = parts[1]
            m = re.search(r"kprobe PMU (?:present )?on (\S+)", line)
            if m:
                run.release = m.group(1)
    return run


def _merge(kernel: str, parts: list[Run]) -> Run:
    """Several runs of one kernel (e.g. the kernel tests in one, the lessons in another): a test's
    outcome is its last run's; the guest's checks are ok only where every run was ok."""
    run = Run(kernel)
    by_name: dict[str, Case] = {}
    for p in parts:
        run.release = run.release or p.release
        run.reported = run.reported or p.reported
        for c in p.cases:
            by_name[c.name] = c
        for step, status in p.steps.items():
            if run.steps.get(step) not in ("FAIL",):
                run.steps[step] = status if run.steps.get(step) in (None, "ok", "skip") else run.steps[step]
    run.cases = list(by_name.values())
    return run


def _short(reason: str, limit: int = 90) -> str:
    reason = re.sub(r"^(Skipped|Failed|AssertionError):\s*", "", reason).replace("|", "/")
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def _cell(cases: list[Case], reported: bool) -> str:
    if not reported:
        return "not run"
    if not cases:
        return "no tests"
    failed = [c for c in cases if c.outcome == "failed"]
    skipped = [c for c in cases if c.outcome == "skipped"]
    passed = len(cases) - len(failed) - len(skipped)
    if failed:
        names = ", ".join(c.name.split("::")[-1] for c in failed[:3])
        more = f" (+{len(failed) - 3})" if len(failed) > 3 else ""
        text = f"**FAILED** {len(failed)} of {len(cases)}: {names}{more}"
    else:
        text = f"passed ({passed} tests)"
    reasons = sorted({_short(c.reason) for c in skipped if c.reason})
    if reasons:
        text += "; skipped: " + "; ".join(reasons[:2])
    return text


def table(runs: list[Run]) -> str:
    head = "| lesson | " + " | ".join(
        f"Debian {r.kernel}" + (f" ({r.release})" if r.release else "") for r in runs) + " |"
    lines = [head, "|" + " --- |" * (len(runs) + 1)]
    for n in LESSONS:
        row = [_cell([c for c in r.cases if lesson_of(c.name) == n], r.reported) for r in runs]
        lines.append(f"| {n} | " + " | ".join(row) + " |")
    row = [_cell([c for c in r.cases if not lesson_of(c.name)], r.reported) for r in runs]
    lines.append("| kernel tests | " + " | ".join(row) + " |")
    steps = ("kprobes", "headers", "setup", "doctor", "smoke", "leftovers")
    row = [", ".join(f"{s} {r.steps[s]}" for s in steps if s in r.steps) or "not run" for r in runs]
    lines.append("| guest checks | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _update_readme(readme: Path, text: str) -> None:
    body = readme.read_text()
    if START not in body or END not in body:
        raise SystemExit(f"{readme} has no {START} ... {END} markers: add them where the table belongs")
    before, rest = body.split(START, 1)
    _, after = rest.split(END, 1)
    readme.write_text(before + START + "\n" + text + END + after)


def main(argv: list[str]) -> int:
    readme = None
    if "--readme" in argv:
        i = argv.index("--readme")
        readme = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    out, pairs = Path(argv[0]), argv[1:]
    runs = []
    for pair in pairs:
        kernel, _, dirs = pair.partition("=")
        parts = [_read_run(kernel, Path(d)) for d in dirs.split(",") if d]
        runs.append(_merge(kernel, parts))
    text = table(runs)
    out.write_text(text)
    print(text)
    if readme is not None:
        _update_readme(readme, text)
    return 0 if all(r.reported and not any(c.outcome == "failed" for c in r.cases)
                    and "FAIL" not in r.steps.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
