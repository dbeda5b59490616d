"""``labkit course autograde DIR --vm IMAGE --jobs N``: every submission in its own fresh VM.

Each submission runs in a VM booted from the class server's image (its own
kernel, nothing shared with the host's or with another submission's; no
network device), ``jobs`` VMs at a time. Inside, ``labkit course autograde``
grades a copy of the course holding that one submission; what comes back is
the executed notebook, put in ``DIR/executed/STUDENT/ASSIGNMENT/``. Then the
host grades every submission from those outputs
(:class:`labkit.commands.course.preprocessors.GradeExecute`'s
``executed_dir``), so the gradebook, the feedback and the report lines are
the course's own, as with a plain ``autograde``; nothing of the students'
runs on the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labkit._errors import ArgumentError, LabkitError
from labkit.commands.course.manage import Graded, autograde
from labkit.hub import limits
from labkit.hub.vm import job_argv

__all__ = ["VmRun", "grade_in_vms", "submissions"]

EXECUTED = "executed"
_NOT_COPIED = {"submitted", "autograded", "feedback", EXECUTED, "feedback_html"}


@dataclass
class VmRun:
    student: str
    assignment: str
    ok: bool
    seconds: float
    why: str = ""


def submissions(course: Path, assignments: list[str] | None, students: list[str] | None) -> list[tuple[str, str]]:
    sub = Path(course) / "submitted"
    out = []
    for s in sorted(p for p in sub.iterdir() if p.is_dir()) if sub.is_dir() else []:
        if students and s.name not in students:
            continue
        for a in sorted(p for p in s.iterdir() if p.is_dir()):
            if not assignments or a.name in assignments:
                out.append((s.name, a.name))
    return out


def _job_dir(course: Path, work: Path, student: str, assignment: str, timeout: int) -> Path:
    job = work / f"{student}-{assignment}"
    dest = job / "course"
    dest.mkdir(parents=True)
    for p in course.iterdir():
        if p.name in _NOT_COPIED:
            continue
        (shutil.copytree if p.is_dir() else shutil.copy2)(p, dest / p.name)
    shutil.copytree(course / "submitted" / student / assignment, dest / "submitted" / student / assignment)
    (job / "run.sh").write_text(
        "cd /mnt/job/course\n"
        f"exec labkit course autograde /mnt/job/course --student {student} --assignment {assignment} "
        f"--timeout {int(timeout)} --no-feedback\n")
    return job


def _run_one(image: Path, job: Path, student: str, assignment: str, *, mem_mb: int, accel: str,
             limit_s: int) -> VmRun:
    t0 = time.monotonic()
    name = f"{student}-{assignment}".lower()
    argv = job_argv(name, image, job, job / "console.log", mem_mb=mem_mb, accel=accel)
    group = f"job-{name}-{os.getpid()}"
    try:
        with open(job / "qemu.log", "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            limits.apply(group, proc.pid, limits.Limits(mem_mb, 1.0))
        except OSError:
            pass          # the VM's own -m still bounds the guest
        try:
            proc.wait(limit_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return VmRun(student, assignment, False, time.monotonic() - t0, f"the VM ran past {limit_s} s")
    finally:
        limits.remove(group)
    rc = (job / "rc").read_text().strip() if (job / "rc").is_file() else None
    if rc != "0":
        tail = (job / "log").read_text(errors="replace")[-1500:] if (job / "log").is_file() else \
            (job / "console.log").read_text(errors="replace")[-1500:]
        return VmRun(student, assignment, False, time.monotonic() - t0,
                     f"the grading in the VM ended with {rc or 'no result'}: {tail}")
    return VmRun(student, assignment, True, time.monotonic() - t0)


def grade_in_vms(course: Path, image: Path, *, jobs: int = 1, timeout: int = 120, mem_mb: int = 2048,
                 accel: str = "tcg", assignments: list[str] | None = None, students: list[str] | None = None,
                 limit_s: int = 3600) -> tuple[list[VmRun], list[Graded]]:
    """Run every submission in its own VM (``jobs`` at a time), then grade them all here from what the
    VMs executed. Needs root (qemu, cgroups, the gradebook's own checks)."""
    course, image = Path(course).resolve(), Path(image).resolve()
    if not all((image / f).is_file() for f in ("vmlinuz", "initrd.img", "rootfs.ext4")):
        raise ArgumentError(f"{image} is no VM image (vmlinuz, initrd.img, rootfs.ext4): "
                            "./lab hub --build-only builds one (STATE/images/current)")
    if not 1 <= jobs <= 64:
        raise ArgumentError(f"--jobs must be 1-64, not {jobs}")
    if not (course / "gradebook.db").is_file():
        raise ArgumentError(f"{course} has no gradebook.db: run `labkit course release` first")
    todo = submissions(course, assignments, students)
    if not todo:
        raise LabkitError(f"no submission in {course / 'submitted'} matches")
    executed = course / EXECUTED
    runs: list[VmRun] = []
    with tempfile.TemporaryDirectory(prefix="labkit-grade-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        dirs = {(s, a): _job_dir(course, work, s, a, timeout) for s, a in todo}
        with ThreadPoolExecutor(jobs) as pool:
            runs = list(pool.map(lambda sa: _run_one(image, dirs[sa], *sa, mem_mb=mem_mb, accel=accel,
                                                     limit_s=limit_s), todo))
        for r in runs:
            if not r.ok:
                continue
            src = dirs[(r.student, r.assignment)] / "course" / "autograded" / r.student / r.assignment
            dest = executed / r.student / r.assignment
            shutil.rmtree(dest, ignore_errors=True)
            if src.is_dir():
                shutil.copytree(src, dest)
            else:
                r.ok, r.why = False, "the VM wrote no autograded notebook"
    done = [(r.student, r.assignment) for r in runs if r.ok]
    graded: list[Graded] = []
    for s, a in done:
        graded += autograde(course, [a], [s], timeout=timeout, executed=executed)
    return runs, graded
