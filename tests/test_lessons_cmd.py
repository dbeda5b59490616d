"""`labkit lessons list | reset | update` on temporary copies of notebooks/ (never the real one):
the shipped version from git (a host checkout) and from the VM's .lessons-shipped mirror,
a student's copy always kept, and the sync the Vagrantfile does, replayed with rsync."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.commands import lessons as L

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LESSON_FILES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb") if L.LESSON.match(p.name))


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit", "lessons", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def _edit(path: Path, text: str = "# my answer") -> bytes:
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": [text], "outputs": [], "execution_count": None})
    data = (json.dumps(nb, indent=1) + "\n").encode()
    path.write_bytes(data)
    return data


def _copy_notebooks(dst: Path) -> None:
    (dst / "notebooks").mkdir(parents=True)
    for p in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy2(p, dst / "notebooks" / p.name)


@pytest.fixture
def checkout(tmp_path):
    """A git checkout with the lessons committed (the shipped version), as on an instructor's host."""
    root = tmp_path / "repo"
    _copy_notebooks(root)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "notebooks"], check=True)
    subprocess.run([*git, "commit", "-qm", "lessons"], check=True)
    return root


@pytest.fixture
def vm(tmp_path):
    """A VM's copy: no git, the shipped lessons in .lessons-shipped, installed by `update`."""
    root = tmp_path / "vm"
    root.mkdir()
    shutil.copytree(NOTEBOOKS, root / L.SHIPPED_DIR, ignore=shutil.ignore_patterns("bpf_snippets", "*.py"))
    (root / "notebooks").mkdir()
    assert L.update_lessons(root)            # installs everything
    return root


def test_list_and_reset_from_git(checkout):
    nb = checkout / "notebooks"
    states, where = L.lesson_states(checkout)
    assert "git" in where and [s.name for s in states] == LESSON_FILES
    assert {s.state for s in states} == {"shipped"}
    mine = _edit(nb / LESSON_FILES[2])
    (nb / LESSON_FILES[3]).unlink()
    r = _cli(checkout, "list")
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^{re.escape(LESSON_FILES[2])}\s+edited\s+-$", r.stdout, re.M), r.stdout
    assert re.search(rf"^{re.escape(LESSON_FILES[3])}\s+missing", r.stdout, re.M), r.stdout
    assert re.search(rf"^{re.escape(LESSON_FILES[1])}\s+shipped", r.stdout, re.M), r.stdout
    # reset by number: the shipped version back, the student's copy beside it
    r = _cli(checkout, "reset", "2")
    assert r.returncode == 0, r.stderr
    m = re.search(rf"{re.escape(LESSON_FILES[2])}: restored the shipped version; your copy is (\S+)", r.stdout)
    assert m, r.stdout
    kept = nb / m.group(1)
    assert re.fullmatch(rf"{re.escape(LESSON_FILES[2][:-6])}\.mine-\d{{8}}-\d{{6}}\.ipynb", kept.name)
    assert kept.read_bytes() == mine
    assert (nb / LESSON_FILES[2]).read_bytes() == (NOTEBOOKS / LESSON_FILES[2]).read_bytes()
    # the kept copy is no lesson: not for the tests' pattern, not for make_nav
    assert not L.LESSON.match(kept.name)
    assert not _load_make_nav().LESSON.match(kept.name)
    # list shows the copy; a second reset of the same lesson keeps nothing more
    r = _cli(checkout, "list", "--json")
    rows = {row["lesson"]: row for row in json.loads(r.stdout)}
    assert rows[LESSON_FILES[2]] == {"lesson": LESSON_FILES[2], "state": "shipped", "newer_shipped": False,
                                     "copies": [kept.name]}
    r = _cli(checkout, "reset", "02")
    assert "already the shipped version" in r.stdout
    assert len(list(nb.glob("*.mine-*.ipynb"))) == 1
    # no N: every lesson that differs (the missing one comes back)
    r = _cli(checkout, "reset")
    assert r.returncode == 0 and f"{LESSON_FILES[3]}: restored the shipped version\n" in r.stdout, r.stdout
    assert {s.state for s in L.lesson_states(checkout)[0]} == {"shipped"}


def _load_make_nav():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_nav_for_test", NOTEBOOKS / "make_nav.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_reset_bad_lesson_and_no_shipped_source(checkout, tmp_path):
    r = _cli(checkout, "reset", "77")
    assert r.returncode == 2 and "no shipped lesson '77'" in r.stderr and "00, 01" in r.stderr, r.stderr
    bare = tmp_path / "bare"
    (bare / "notebooks").mkdir(parents=True)
    r = _cli(bare, "list")
    assert r.returncode == 2 and ".lessons-shipped does not exist" in r.stderr, r.stderr
    r = _cli(bare, "update")
    assert r.returncode == 0 and "nothing to update" in r.stdout


def test_update_three_way(vm):
    nb, shipped = vm / "notebooks", vm / L.SHIPPED_DIR
    a, b, c, d = LESSON_FILES[1], LESSON_FILES[2], LESSON_FILES[3], LESSON_FILES[4]
    assert all((nb / n).read_bytes() == (shipped / n).read_bytes() for n in LESSON_FILES)
    assert (nb / "index.ipynb").exists()
    # the student works on a and b; the instructor fixes b and c
    mine_a, mine_b = _edit(nb / a, "# a"), _edit(nb / b, "# b")
    new_b, new_c = _edit(shipped / b, "# fixed b"), _edit(shipped / c, "# fixed c")
    (shipped / d).unlink()
    states = {s.name: s for s in L.lesson_states(vm)[0]}
    assert states[b].state == "edited" and states[b].newer and states[c].newer and not states[a].newer
    said = "\n".join(L.update_lessons(vm))
    assert (nb / a).read_bytes() == mine_a                        # edited, nothing new shipped: theirs
    assert (nb / c).read_bytes() == new_c and f"{c}: updated to the newer shipped version" in said
    assert (nb / b).read_bytes() == new_b                         # edited and a newer one shipped:
    (kept,) = nb.glob(f"{b[:-6]}.mine-*.ipynb")                   # the newer one, their copy beside it
    assert kept.read_bytes() == mine_b and f"{b}: a newer version shipped; your copy is kept as {kept.name}" in said
    assert (nb / d).exists()                                      # a lesson withdrawn: the student's stays
    # a second update changes nothing
    before = {p.name: p.read_bytes() for p in nb.iterdir()}
    L.update_lessons(vm)
    assert {p.name: p.read_bytes() for p in nb.iterdir()} == before
    # no record of what was installed (a VM from before this change): an edited lesson is kept
    (vm / L.BASE_FILE).unlink()
    _edit(nb / a, "# more")
    said = "\n".join(L.update_lessons(vm))
    assert f"{a}: a newer version shipped; your copy is kept as" in said
    assert len(list(nb.glob(f"{a[:-6]}.mine-*.ipynb"))) == 1


RSYNC = shutil.which("rsync")


def _vagrant_rsync_folders():
    """The two rsync synced folders of the Vagrantfile, read from its text: (hostpath, guest suffix, args, excludes)."""
    text = (ROOT / "Vagrantfile").read_text()
    out = []
    for m in re.finditer(r'config\.vm\.synced_folder "([^"]+)", ([^,]+), type: "rsync",(.*?)\n\n', text, re.S):
        body = m.group(3)
        args = re.findall(r'"([^"]+)"', re.search(r"rsync__args: \[(.*?)\]", body, re.S).group(1))
        excl = re.findall(r'"([^"]+)"', re.search(r"rsync__exclude: \[(.*?)\],\s*rsync__args", body, re.S).group(1))
        out.append((m.group(1), m.group(2).strip(), args, excl))
    return out


@pytest.mark.skipif(RSYNC is None, reason="rsync is not installed")
def test_the_vagrant_sync_then_update_never_leaves_a_stale_lesson_nor_loses_an_edit(tmp_path):
    """The Vagrantfile's two rsync folders replayed with rsync (as `vagrant rsync` runs them,
    excludes verbatim), then `labkit lessons update` (what labkit.service runs before JupyterLab)."""
    folders = _vagrant_rsync_folders()
    assert len(folders) == 2, folders
    host = tmp_path / "host"
    _copy_notebooks(host)
    guest = tmp_path / "guest"
    guest.mkdir()

    def sync():
        for hostpath, guestpath, args, excl in folders:
            dst = guest if guestpath == "GUEST_DIR" else guest / re.fullmatch(r'"#\{GUEST_DIR\}/(.+)"', guestpath).group(1)
            dst.mkdir(parents=True, exist_ok=True)
            src = host if hostpath == "." else host / hostpath
            cmd = [RSYNC, *args, *sum((["--exclude", e] for e in [".vagrant/", *excl]), []), f"{src}/", str(dst)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        return "\n".join(L.update_lessons(guest))

    sync()
    lesson = LESSON_FILES[2]
    assert (guest / "notebooks" / lesson).read_bytes() == (host / "notebooks" / lesson).read_bytes()
    mine = _edit(guest / "notebooks" / lesson, "# student")
    sync()                                                    # nothing new: the student's edit stays
    assert (guest / "notebooks" / lesson).read_bytes() == mine
    fixed = _edit(host / "notebooks" / lesson, "# instructor's fix")
    said = sync()                                             # a fix: it arrives, the edit is kept
    assert (guest / "notebooks" / lesson).read_bytes() == fixed, said
    (kept,) = (guest / "notebooks").glob("*.mine-*.ipynb")
    assert kept.read_bytes() == mine
    other = LESSON_FILES[3]
    fixed_other = _edit(host / "notebooks" / other, "# another fix")
    sync()                                                    # a lesson the student never touched: updated
    assert (guest / "notebooks" / other).read_bytes() == fixed_other
    assert len(list((guest / "notebooks").glob("*.mine-*.ipynb"))) == 1


def test_what_the_command_keeps_is_ignored_by_git():
    """The record and a student's kept copies never show in `git status` (nor block a `git pull`)."""
    kept = L.copy_name(NOTEBOOKS / LESSON_FILES[0]).relative_to(ROOT)
    assert L.is_kept_copy(kept)
    for path in (L.BASE_FILE, str(kept)):
        r = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", path])
        assert r.returncode == 0, f"{path} is not ignored by git: add it to .gitignore"
    r = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", f"notebooks/{LESSON_FILES[0]}"])
    assert r.returncode == 1, "the lessons themselves are not ignored"
