"""``labkit lessons list | reset [N ...] | update``: the shipped lessons against a student's copies.

Where the shipped lessons come from (:func:`shipped_lessons`):

* ``<repo>/.lessons-shipped/`` when it exists: in the VM the Vagrantfile
  rsyncs the host's ``notebooks/`` there, an exact mirror (``--delete``), at
  every ``vagrant up``, ``vagrant reload`` and ``vagrant rsync``; the lessons
  students work on in ``notebooks/`` are never written by rsync;
* else git: the committed version (``git show HEAD:notebooks/NN-name.ipynb``).

A student's copy is never lost. ``reset`` moves it aside, beside the lesson,
as ``NN-name.mine-YYYYmmdd-HHMMSS.ipynb`` (a name that neither the lesson
tests' glob nor ``notebooks/make_nav.py`` take for a lesson: see
:data:`LESSON`), then writes the shipped version in its place.

``update`` (run by labkit.service before JupyterLab starts, so at every boot
of the VM and every ``vagrant provision``) brings the shipped lessons into
``notebooks/`` with a three-way rule, ``<repo>/.lessons-installed.json``
remembering what it installed last (the base):

* a lesson the student does not have: installed;
* a lesson the student did not change since it was installed: replaced by the
  newer shipped one;
* a lesson the student changed, and the shipped one did not change: kept as is;
* a lesson the student changed, and a newer one shipped (or no base is known):
  the student's copy is kept as ``NN-name.mine-<time>.ipynb`` and the shipped
  one installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from labkit._errors import ArgumentError, LabkitError, NotSupportedError

__all__ = [
    "BASE_FILE",
    "LESSON",
    "SHIPPED_DIR",
    "LessonState",
    "copy_name",
    "is_kept_copy",
    "lesson_states",
    "main",
    "repo_root",
    "reset_lessons",
    "shipped_lessons",
    "update_lessons",
]

#: a lesson's file name (what notebooks/make_nav.py and the notebook tests take for a lesson);
#: a student's kept copy, ``NN-name.mine-<time>.ipynb``, is not one
LESSON = re.compile(r"^\d\d-[a-z0-9-]+\.ipynb$")
#: the VM's mirror of the host's notebooks/ (the Vagrantfile's second synced folder), under the repo
SHIPPED_DIR = ".lessons-shipped"
#: what ``update``/``reset`` installed last, per file (sha256), under the repo
BASE_FILE = ".lessons-installed.json"
_MANAGED = re.compile(r"^(\d\d-[a-z0-9-]+|index)\.ipynb$")   # what update installs: the lessons and the contents


def repo_root() -> Path:
    """The checkout this labkit runs from (the one JupyterLab serves)."""
    return Path(__file__).resolve().parents[2]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shipped_lessons(root: Path) -> tuple[dict[str, bytes], str]:
    """(file name -> bytes of every shipped notebook, where they came from).
    NotSupportedError when there is neither a .lessons-shipped mirror nor a git checkout."""
    mirror = root / SHIPPED_DIR
    if mirror.is_dir():
        return ({p.name: p.read_bytes() for p in sorted(mirror.glob("*.ipynb")) if _MANAGED.match(p.name)},
                f"{mirror} (the VM's copy of the shipped lessons)")
    try:
        r = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", "HEAD", "notebooks/"],
                           capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        r = None
    if r is None or r.returncode != 0:
        raise NotSupportedError(f"no shipped lessons to compare with: {mirror} does not exist (in the VM, `vagrant "
                                f"reload` syncs it) and {root} is not a git checkout "
                                f"({(r.stderr.strip() if r else 'no git')})", feature="shipped lessons")
    out = {}
    for path in r.stdout.split():
        name = path.rsplit("/", 1)[-1]
        if _MANAGED.match(name):
            out[name] = subprocess.run(["git", "-C", str(root), "show", f"HEAD:{path}"], capture_output=True,
                                       check=True, timeout=30).stdout
    return out, "git (the committed version, HEAD)"


def copy_name(lesson: Path, when: float | None = None) -> Path:
    """Where a student's copy of ``lesson`` is kept: beside it, ``NN-name.mine-<time>.ipynb`` (never an existing file)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    cand = lesson.with_name(f"{lesson.stem}.mine-{stamp}.ipynb")
    n = 2
    while cand.exists():
        cand = lesson.with_name(f"{lesson.stem}.mine-{stamp}-{n}.ipynb")
        n += 1
    return cand


def is_kept_copy(path: Path) -> bool:
    """Is ``path`` a student's kept copy (``NN-name.mine-<time>.ipynb``), not a notebook to run or list?"""
    return ".mine-" in path.name


def _copies(lesson: Path) -> list[Path]:
    return sorted(lesson.parent.glob(f"{lesson.stem}.mine-*.ipynb"))


@dataclass
class LessonState:
    """One lesson: ``state`` is "shipped" (the student's file is the shipped one),
    "edited" (it differs), "missing"; ``newer`` says a newer version shipped since
    the student's file was installed (VM only); ``copies``: the kept student copies."""

    name: str
    state: str
    newer: bool
    copies: list[Path]


def _load_base(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / BASE_FILE).read_text())
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_base(root: Path, base: dict[str, str]) -> None:
    _write(root / BASE_FILE, (json.dumps(base, indent=1, sort_keys=True) + "\n").encode())


def _write(path: Path, data: bytes) -> None:
    """Write atomically, keeping the old file's mode and owner (else the folder's owner)."""
    try:
        st = path.stat()
        mode, uid, gid = st.st_mode & 0o777, st.st_uid, st.st_gid
    except FileNotFoundError:
        dst = path.parent.stat()
        mode, uid, gid = 0o644, dst.st_uid, dst.st_gid
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        if os.geteuid() == 0:
            os.chown(tmp, uid, gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _keep(path: Path) -> Path:
    """Move the student's file aside (a rename: same bytes, owner, times)."""
    dest = copy_name(path)
    os.rename(path, dest)
    return dest


def lesson_states(root: Path) -> tuple[list[LessonState], str]:
    """Every shipped lesson (NN-name.ipynb) against the student's file in ``root/notebooks``."""
    shipped, where = shipped_lessons(root)
    base = _load_base(root)
    nb = root / "notebooks"
    out = []
    for name, data in sorted(shipped.items()):
        if not LESSON.match(name):
            continue
        path = nb / name
        if not path.exists():
            state = "missing"
        else:
            state = "shipped" if path.read_bytes() == data else "edited"
        newer = (root / SHIPPED_DIR).is_dir() and name in base and base[name] != _sha(data)
        out.append(LessonState(name, state, newer, _copies(path)))
    return out, where


def _pick(names: list[str], wanted: list[str]) -> list[str]:
    """Lesson file names for arguments like "2", "02", "02-xdp-ping-drop" or its file name."""
    picked = []
    for w in wanted:
        key = w[:-6] if w.endswith(".ipynb") else w
        if key.isdigit():
            key = f"{int(key):02d}"
        hits = [n for n in names if n[:-6] == key or n.split("-", 1)[0] == key]
        if len(hits) != 1:
            raise ArgumentError(f"no shipped lesson {w!r}; the lessons are: "
                                f"{', '.join(n.split('-', 1)[0] for n in names)} (e.g. `labkit lessons reset 2`)")
        if hits[0] not in picked:
            picked.append(hits[0])
    return picked


def reset_lessons(root: Path, which: list[str]) -> list[str]:
    """Restore the shipped version of lessons ``which`` (all that differ if empty), keeping
    the student's copy beside each one. Returns one line per lesson saying what happened."""
    shipped, _ = shipped_lessons(root)
    lessons = sorted(n for n in shipped if LESSON.match(n))
    picked = _pick(lessons, which) if which else lessons
    nb = root / "notebooks"
    base = _load_base(root)
    said = []
    for name in picked:
        path, data = nb / name, shipped[name]
        if path.exists() and path.read_bytes() == data:
            if which:
                said.append(f"{name}: already the shipped version")
            base[name] = _sha(data)
            continue
        kept = _keep(path) if path.exists() else None
        _write(path, data)
        base[name] = _sha(data)
        said.append(f"{name}: restored the shipped version" + (f"; your copy is {kept.name}" if kept else ""))
    _save_base(root, base)
    if not said:
        said.append("every lesson is already the shipped version")
    return said


def update_lessons(root: Path) -> list[str]:
    """Bring the shipped lessons (the VM's .lessons-shipped mirror) into notebooks/ by the
    module's three-way rule. Outside the VM (no mirror) it does nothing and says so."""
    mirror = root / SHIPPED_DIR
    if not mirror.is_dir():
        return [f"nothing to update: no {SHIPPED_DIR}/ here (that is the VM's copy of the shipped lessons); "
                "outside the VM lessons come with git (git pull), and `labkit lessons reset N` restores one"]
    shipped, _ = shipped_lessons(root)
    base = _load_base(root)
    nb = root / "notebooks"
    nb.mkdir(exist_ok=True)
    said = []
    for name, data in sorted(shipped.items()):
        path, new = nb / name, _sha(data)
        if not path.exists():
            _write(path, data)
            said.append(f"{name}: installed")
        else:
            mine = _sha(path.read_bytes())
            if mine == new:
                pass
            elif base.get(name) == new:
                pass                                 # the student's edits of the current lesson: theirs
            elif base.get(name) == mine:
                _write(path, data)                    # untouched since installed: the newer one replaces it
                said.append(f"{name}: updated to the newer shipped version")
            else:
                kept = _keep(path)
                _write(path, data)
                said.append(f"{name}: a newer version shipped; your copy is kept as {kept.name}")
        base[name] = new
    _save_base(root, base)
    return said or ["every lesson is the newest shipped version (or the student's own edit of it)"]


def _table(states: list[LessonState]) -> str:
    rows = [["LESSON", "STATE", "YOUR COPIES"]]
    for s in states:
        state = s.state + (" (a newer version shipped: labkit lessons reset N)" if s.newer else "")
        rows.append([s.name, state, ", ".join(p.name for p in s.copies) or "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}".rstrip() for r in rows)


def main(argv: list[str]) -> int:
    """``labkit lessons list | reset [N ...] | update``; returns the exit status."""
    p = argparse.ArgumentParser(prog="labkit lessons",
                                description="The shipped lessons against your copies: list, reset, update.")
    p.add_argument("--root", type=Path, default=None, help="the labkit checkout (default: the one labkit runs from)")
    sub = p.add_subparsers(dest="command", required=True, metavar="{list,reset,update}")
    ls = sub.add_parser("list", help="which lessons differ from the shipped version, and your kept copies")
    ls.add_argument("--json", action="store_true", help="print JSON")
    rs = sub.add_parser("reset", help="restore the shipped lesson(s); your copy is kept beside each "
                                      "as NN-name.mine-<time>.ipynb (no N: every lesson that differs)")
    rs.add_argument("lessons", nargs="*", metavar="N", help="lesson number(s), e.g. 2 or 02, or a lesson's name")
    sub.add_parser("update", help="(the VM does this at boot) bring newer shipped lessons in, keeping edited copies")
    a = p.parse_args(argv)
    root = (a.root or repo_root()).resolve()
    try:
        if a.command == "list":
            states, where = lesson_states(root)
            if a.json:
                print(json.dumps([{"lesson": s.name, "state": s.state, "newer_shipped": s.newer,
                                   "copies": [c.name for c in s.copies]} for s in states], indent=1))
            else:
                print(f"shipped lessons from {where}")
                print(_table(states))
            return 0
        lines = reset_lessons(root, a.lessons) if a.command == "reset" else update_lessons(root)
    except LabkitError as e:
        print(f"labkit lessons: {e}", file=sys.stderr)
        return 2
    except PermissionError as e:
        print(f"labkit lessons: {e}: run it as the notebooks' owner or with sudo", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0
