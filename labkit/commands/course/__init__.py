"""``labkit course``: the lessons as an nbgrader course, graded on the real kernel.

    labkit course create DIR [--lessons 01 03 ...] [--points 2] [--timeout 120]
    labkit course release DIR [lesson01 ...]
    labkit course submit DIR STUDENT NOTEBOOK [--assignment lesson01] [--at "2026-03-09 23:10"]
    labkit course collect DIR --hub STATE --assignment lesson01 [...] [--student NAME ...]
    labkit course release-feedback DIR --hub STATE [--assignment lesson01 ...] [--student NAME ...]
    labkit course autograde DIR [--assignment lesson01 ...] [--student ID ...] [--timeout 120]
                            [--vm IMAGE --jobs N] [--no-feedback]
    labkit course gradebook DIR [--out grades.csv]
    labkit course weights DIR                     (each part's weight and gate, as DIR grades them)
    labkit course check-catalogue FILE.toml ...   (a teacher's own right and wrong answers, judged)

``create`` writes DIR/nbgrader_config.py, DIR/labkit.toml (the grading
settings, once: weights, gates, rounding, the integrity rule, due dates) and
DIR/source/lessonNN/ (answer cells as solution cells with the reference
inside solution regions, an autograder test cell per exercise); ``release``
runs nbgrader generate_assignment (DIR/release/: the lessons' starters, no
reference); ``submit`` copies a notebook in with its time (timestamp.txt); ``collect``
submits every class-server student's lesson from their own disk
(labkit/commands/course/collect.py: what they submitted from the Assignments
tab when the hub serves the course); ``release-feedback`` hands each
class-server student their own feedback, for the Assignments tab's "Fetch
Feedback" (labkit/hub/exchange.py);
``autograde`` grades DIR/submitted/STUDENT/lessonNN/ one submission at a time
as root, each in a fresh kernel, gives back what each left, writes offline
feedback HTML (DIR/feedback/) and prints one line per submission;
``gradebook`` exports one CSV row per (assignment, student, exercise);
``weights`` prints the table the course grades with; ``check-catalogue``
judges a teacher's own answers with the exercises' checkers and says which
verdicts are not the expected ones (labkit/commands/course/catalogue.py: the
file format). nbgrader's own commands work in DIR too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from labkit._errors import ArgumentError, LabkitError
from labkit.commands.course.catalogue import check_cases, load_catalogue
from labkit.commands.course.config import DEFAULT_CELL_TIMEOUT
from labkit.commands.course.gradebook import export_csv, grades
from labkit.commands.course.manage import autograde, create, release, submit
from labkit.commands.course.settings import load_settings
from labkit.commands.course.weights import weights_table
from labkit.commands.course.collect import collect
from labkit.hub.exchange import release_feedback
from labkit.commands.course.vmgrade import grade_in_vms

__all__ = ["autograde", "check_cases", "create", "export_csv", "grades", "load_catalogue", "load_settings", "main",
           "release", "submit", "weights_table"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labkit course", description="the lessons as an nbgrader course")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="lessons -> nbgrader source notebooks (DIR/source/lessonNN)")
    c.add_argument("dir", type=Path)
    c.add_argument("--lessons", nargs="+", metavar="NN", help="lesson numbers (default: all)")
    c.add_argument("--points", type=float, default=2.0, help="points per exercise (default 2)")
    c.add_argument("--timeout", type=int, default=DEFAULT_CELL_TIMEOUT, help="seconds per cell when grading")
    r = sub.add_parser("release", help="the student version (nbgrader generate_assignment)")
    r.add_argument("dir", type=Path)
    r.add_argument("assignments", nargs="*", metavar="lessonNN")
    s = sub.add_parser("submit", help="copy a student's notebook into DIR/submitted/STUDENT/lessonNN/")
    s.add_argument("dir", type=Path)
    s.add_argument("student")
    s.add_argument("notebook", type=Path)
    s.add_argument("--assignment")
    s.add_argument("--at", metavar="TIME", help="when the student handed it in (default: now; e.g. "
                                                "\"2026-03-09 23:10\", local time, or with an offset)")
    h = sub.add_parser("collect", help="submit the class server's students' lessons, read from their disks")
    h.add_argument("dir", type=Path)
    h.add_argument("--hub", type=Path, required=True, metavar="STATE", help="the class server's state (./lab hub --state)")
    h.add_argument("--assignment", action="append", dest="assignments", required=True, metavar="lessonNN")
    h.add_argument("--student", action="append", dest="students", metavar="NAME")
    f = sub.add_parser("release-feedback", help="each class-server student's feedback, where their Assignments "
                       "tab fetches it")
    f.add_argument("dir", type=Path)
    f.add_argument("--hub", type=Path, required=True, metavar="STATE", help="the class server's state (./lab hub --state)")
    f.add_argument("--assignment", action="append", dest="assignments", metavar="lessonNN")
    f.add_argument("--student", action="append", dest="students", metavar="NAME")
    a = sub.add_parser("autograde", help="grade the submissions on the real kernel (root), then feedback HTML")
    a.add_argument("dir", type=Path)
    a.add_argument("--assignment", action="append", dest="assignments", metavar="lessonNN")
    a.add_argument("--student", action="append", dest="students", metavar="ID")
    a.add_argument("--timeout", type=int, default=DEFAULT_CELL_TIMEOUT, help="seconds per cell")
    a.add_argument("--vm", type=Path, metavar="IMAGE", help="run each submission in its own fresh VM of this "
                   "image (the class server's: STATE/images/current), then grade here from its outputs")
    a.add_argument("--jobs", type=int, default=1, help="with --vm: VMs at a time (default 1)")
    a.add_argument("--vm-mem", type=int, default=2048, metavar="MiB", help="with --vm: each VM's RAM")
    a.add_argument("--accel", choices=["tcg", "kvm"], default="tcg", help="with --vm: qemu's accelerator")
    a.add_argument("--no-feedback", action="store_true", help="write no feedback HTML")
    g = sub.add_parser("gradebook", help="one CSV row per (assignment, student, exercise)")
    g.add_argument("dir", type=Path)
    g.add_argument("--out", type=Path)
    w = sub.add_parser("weights", help="each part's weight and gate, as the course grades them")
    w.add_argument("dir", type=Path)
    w.add_argument("assignments", nargs="*", metavar="lessonNN")
    k = sub.add_parser("check-catalogue", help="judge a teacher's own right and wrong answers (TOML [[case]]s)")
    k.add_argument("files", nargs="+", type=Path, metavar="FILE.toml")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "create":
            for path in create(args.dir, args.lessons, points=args.points, timeout=args.timeout):
                print(f"source: {path}")
            print(f"grading settings: {args.dir / 'labkit.toml'}")
        elif args.action == "release":
            for path in release(args.dir, args.assignments or None):
                print(f"released: {path}")
        elif args.action == "submit":
            print(f"submitted: {submit(args.dir, args.student, args.notebook, args.assignment, at=args.at)}")
        elif args.action == "collect":
            got = collect(args.hub, args.dir, args.assignments, args.students)
            for c in got:
                print(c.line())
            print(f"{sum(c.what.startswith('submitted') for c in got)} submitted, "
                  f"{sum(not c.what.startswith('submitted') for c in got)} not")
        elif args.action == "release-feedback":
            done = release_feedback(args.dir, args.hub, args.assignments, args.students)
            for r in done:
                print(f"{r.student:<16} {r.assignment:<10} {r.notebook}: feedback released")
            print(f"{len(done)} feedback files released" if done else
                  "no feedback to release: none of the graded submissions came through the Assignments tab")
        elif args.action == "autograde":
            failed = 0
            if args.vm:
                t0 = time.monotonic()
                runs, graded = grade_in_vms(args.dir, args.vm, jobs=args.jobs, timeout=args.timeout,
                                            mem_mb=args.vm_mem, accel=args.accel, assignments=args.assignments,
                                            students=args.students)
                for r in runs:
                    print(f"VM  {r.student}  {r.assignment}  {'ok' if r.ok else 'FAILED'}  {r.seconds:.0f} s"
                          + (f"  {r.why}" if r.why else ""), flush=True)
                    failed += not r.ok
                print(f"{len(runs)} submissions in VMs, {args.jobs} at a time: {time.monotonic() - t0:.0f} s, "
                      f"{(time.monotonic() - t0) / max(1, len(runs)):.0f} s per submission", flush=True)
            else:
                graded = autograde(args.dir, args.assignments, args.students, timeout=args.timeout,
                                   feedback=not args.no_feedback)
            for g in graded:
                failed += not g.ok
                print(g.line(), flush=True)
                if not g.ok:
                    print(g.log, file=sys.stderr)
            return 1 if failed else 0
        elif args.action == "gradebook":
            out = export_csv(args.dir, args.out)
            df = grades(args.dir)
            print(df.to_string(index=False, columns=["assignment", "student", "exercise", "points", "max_points",
                                                     "status"]) if len(df) else "no grades yet")
            print(f"written: {out}")
        elif args.action == "weights":
            settings = load_settings(args.dir)
            for warning in settings.warnings:
                print(f"labkit course: {settings.path}: {warning}", file=sys.stderr)
            source = args.dir / "source"
            ids = args.assignments or (sorted(p.name for p in source.iterdir() if p.is_dir()) if source.is_dir()
                                       else [])
            if not ids:
                raise ArgumentError(f"{args.dir} has no assignments (source/lessonNN): name them, e.g. lesson06")
            table = weights_table(ids, settings.overrides)
            table["gate"] = table.gate.map(lambda c: "" if c != c or c is None else f"at most {c * 100:.0f}%")
            print(table.to_string(index=False) if len(table) else "no exercises")
        elif args.action == "check-catalogue":
            cases = [c for f in args.files for c in load_catalogue(f)]   # every file checked before any case runs
            misses = 0
            for o in check_cases(cases):
                misses += not o.ok
                first = o.message.strip().splitlines()[0] if o.message.strip() else ""
                print(f"{'ok' if o.ok else 'MISMATCH':<8}  {o.case.lesson} {o.case.exercise}  {o.case.name}: "
                      f"{o.why} ({o.seconds:.1f} s)")
                print(f"{'':<8}  {first[:200]}")
            print(f"{len(cases) - misses} of {len(cases)} judged as expected")
            return 1 if misses else 0
    except LabkitError as e:
        print(f"labkit course: {e}", file=sys.stderr)
        return 1
    return 0
