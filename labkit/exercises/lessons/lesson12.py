"""Lesson 12, security (BPF LSM): q1 refuses one program's exec inside a sandbox cgroup only, q2 refuses
opening one file inside it only. Each checker makes a cgroup of the lab's own with two children, ``a`` (the
sandbox: its id goes in as -DLK12_CGROUP) and ``b`` (a sibling), starts a helper process in each *before*
the answer is loaded (so an answer that refuses every exec in the sandbox cannot stop the helper itself),
loads the answer with the LSM guard told what to try from outside (labkit.hooks.lsm: a program that refuses
it to the checker's own process is detached at once, and that is the "machine-wide" wrong answer), then
has the helpers try the acts and report each errno. A pure function decides from what was observed
(``_diagnose_exec``, ``_diagnose_open``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from labkit.exercises.framework import Check, Checklist, Exercise, Incorrect, Lesson, Part, load_answer, snippet_text
from labkit.exercises.helpers import HelperFailed
from labkit.hooks.cgroup import Cgroup
from labkit.hooks.lsm import MachineWideError
from labkit.lab import Lab

__all__ = ["EACCES", "EPERM", "build", "errno_name"]

EPERM, EACCES = 1, 13
_NAMES = {0: "it worked", 1: "EPERM", 2: "ENOENT", 13: "EACCES", 22: "EINVAL"}

#: a helper: started in a cgroup before the answer is loaded; waits for its tries (JSON on stdin), tries each,
#: prints the errno of each (0: it worked; for "exec", a program that ran but exited non-zero: -1)
_HELPER = r"""
import json, os, subprocess, sys
tries = json.loads(sys.stdin.readline())
out = {}
for name, act, path in tries:
    try:
        if act == "exec":
            out[name] = 0 if subprocess.run([path], timeout=20).returncode == 0 else -1
        elif act in ("open", "write"):
            fd = os.open(path, os.O_RDONLY if act == "open" else os.O_WRONLY)
            os.close(fd)
            out[name] = 0
        elif act == "read":              # open, then read: which of the two was refused
            fd = os.open(path, os.O_RDONLY)
            try:
                os.read(fd, 1)
                out[name] = 0
            except OSError as e:
                out[name] = 1000 + (e.errno or 0)
            finally:
                os.close(fd)
    except OSError as e:
        out[name] = e.errno or -1
print(json.dumps(out), flush=True)
"""


def errno_name(n: int | None) -> str:
    """What an errno the helpers report is called ("EPERM (1)"; 0: "it worked")."""
    if n is None:
        return "not tried"
    if n == 0:
        return "it worked"
    if n == -1:
        return "it ran but failed"
    if n >= 1000:
        return f"opened, then the read failed with {errno_name(n - 1000)}"
    return f"{_NAMES.get(n, 'errno')} ({n})"


class _Helpers:
    """One helper process per cgroup, started before the answer is loaded; ``tries`` sends each its list."""

    def __init__(self, groups: dict):
        self.procs = {n: cg.popen([sys.executable, "-c", _HELPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for n, cg in groups.items()}

    def tries(self, lists: dict) -> dict:
        out = {}
        for n, p in self.procs.items():
            try:
                stdout, stderr = p.communicate(json.dumps(lists.get(n, [])) + "\n", timeout=60)
            except subprocess.TimeoutExpired:
                raise HelperFailed(f"the checker's helper in cgroup {n} did not answer within 60 s") from None
            if p.returncode != 0:
                raise HelperFailed(f"the checker's helper in cgroup {n} failed: {stderr.strip()[-500:]}")
            out.update(json.loads(stdout))
        return out

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()


def _lsm_functions(prog) -> list[str]:
    hooks = [target for att in prog.auto_attachments for kind, target, _fn in att.probes if kind == "lsm"]
    if not hooks:
        raise Incorrect("the program has no LSM_PROBE function, so nothing was attached: an LSM program is written "
                        "LSM_PROBE(hook, its arguments) (LSM_PROBE(file_open, struct file *file)), and lab.load "
                        "attaches it")
    return hooks


def _observe(answer, name: str, files: dict, tries: dict, outside: dict) -> dict:
    """Make cgroups a and b, start a helper in each, load the answer (the guard told ``outside``) with
    -DLK12_CGROUP (a's id) and -DLK12_INO (the target's inode), then have the helpers try ``tries``."""
    with Lab() as lab, Cgroup(name) as parent:
        a, b = parent.child("a"), parent.child("b")
        helpers = _Helpers({"a": a, "b": b})
        try:
            defines = {"LK12_CGROUP": a.id, "LK12_INO": os.stat(files["target"]).st_ino}
            try:
                prog = load_answer(lab, answer, name="your answer", defines=defines, outside=outside)
            except MachineWideError as e:
                return {"machine_wide": e.refused, "ms": round(e.attached_ms), "hooks": [], "tried": {}}
            hooks = _lsm_functions(prog)
            tried = helpers.tries(tries)
            return {"machine_wide": [], "ms": None, "hooks": hooks, "tried": tried}
        finally:
            helpers.close()


def _machine_wide(obs: dict, parts: list[str], what: str) -> None:
    """Raise Incorrect when the guard detached the answer (nothing else was tried)."""
    if not obs["machine_wide"]:
        return
    said = "; ".join(f"{'running' if r['act'] == 'exec' else 'opening'} {r['path'].rsplit('/', 1)[-1]} "
                     f"({r['error']})" for r in obs["machine_wide"])
    msg = (f"machine-wide: your program refused, to the checker's own process (outside the sandbox), {said}. It "
           f"would refuse that to every process of the machine, JupyterLab and SSH included: labkit detached it "
           f"{obs['ms']} ms after attaching it. An LSM program runs for every process: refuse {what} only when "
           "bpf_get_current_cgroup_id() == LK12_CGROUP")
    raise Incorrect(msg, parts=[Part(p, False, "not tried: the program was detached at once") for p in parts[:-1]]
                    + [Part(parts[-1], False, msg)])


def _refused_with_eperm(got: int, nothing: str) -> tuple[bool, str]:
    """(whether ``got`` is EPERM, what to say when it is not)."""
    if got == EPERM:
        return True, ""
    if got in (0, -1):
        why = nothing
    elif got >= 1000:
        why = (f"the open worked and the read was refused ({errno_name(got - 1000)}): that is the file_permission "
               "hook, which runs on each read and write of a file already open. Refuse the open itself: "
               "LSM_PROBE(file_open, struct file *file)")
    elif got == EACCES:
        why = (f"it was refused, but with EACCES (13), and the task asks for EPERM: return -EPERM "
               "(an LSM program returns 0 to allow, or minus the errno the process should see)")
    else:
        why = f"it was refused with {errno_name(got)}, not EPERM: return -EPERM"
    return False, why


# ------------------------------------------------------------------ q1: refuse an exec
Q1_PARTS = ["refuses the program in the sandbox with EPERM", "by any path (a symbolic link to it)",
            "other programs run in the sandbox", "the program's file can still be read in the sandbox",
            "only the sandbox"]


def _observe_exec(answer) -> dict:
    """The target: a copy of /bin/true (-DLK12_INO is its inode), a symbolic link to it, and another copy
    (another inode). In a: run the target, run it through the link, run the other copy, read the target's
    file; in b: run the target. The guard runs the target and opens it from the checker's process."""
    d = tempfile.mkdtemp(prefix="lk12-q1-")
    try:
        true = shutil.which("true") or "/bin/true"
        target, other, link = (os.path.join(d, n) for n in ("forbidden", "allowed", "via-link"))
        shutil.copy2(true, target)
        shutil.copy2(true, other)
        os.symlink(target, link)
        tries = {"a": [["exec", "exec", target], ["exec via link", "exec", link], ["exec other", "exec", other],
                       ["read", "read", target]],
                 "b": [["b exec", "exec", target]]}
        return _observe(answer, "lk12-q1", {"target": target}, tries, {"exec": [target], "open": [target]})
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _diagnose_exec(obs: dict) -> tuple[str, dict]:
    """The verdict on q1 from the errno of each try (0: it worked; 1: EPERM)."""
    _machine_wide(obs, Q1_PARTS, "the exec")
    t = obs["tried"]
    c = Checklist()
    nothing = (f"the program ran in the sandbox ({errno_name(t['exec'])}): nothing was refused. In "
               "LSM_PROBE(bprm_check_security, struct linux_binprm *bprm), return -EPERM when "
               "bpf_get_current_cgroup_id() == LK12_CGROUP and bprm->file->f_inode->i_ino == LK12_INO (0 lets "
               "the exec go on)")
    c.part("refuses the program in the sandbox with EPERM", *_refused_with_eperm(t["exec"], nothing))
    c.part("by any path (a symbolic link to it)", t["exec"] != EPERM or t["exec via link"] == EPERM,
           f"run through a symbolic link it was not refused ({errno_name(t['exec via link'])}): the path a process "
           "names is not the program. Test the file the exec opens (bprm->file: its inode), not bprm->filename")
    c.part("other programs run in the sandbox", t["exec other"] == 0,
           f"another program (a copy of the same /bin/true, another inode) could not run in the sandbox either "
           f"({errno_name(t['exec other'])}): every exec there is refused. Refuse only when the file's inode is "
           "LK12_INO")
    c.part("the program's file can still be read in the sandbox", t["read"] == 0,
           f"reading the program's file in the sandbox was refused too ({errno_name(t['read'])}): file_open runs for "
           "every open, and an exec opens its file too. Refuse the exec itself: bprm_check_security (or "
           "bprm_creds_for_exec), which only an exec reaches")
    c.part("only the sandbox", t["b exec"] == 0,
           f"a process in cgroup b, beside the sandbox, could not run it either ({errno_name(t['b exec'])}): "
           "refuse only when bpf_get_current_cgroup_id() == LK12_CGROUP")
    return c.done("yes: in the sandbox the program was refused with EPERM, through its path and a symbolic link, "
                  "while another program ran and its file could be read; beside the sandbox and outside it, it ran",
                  hooks=obs["hooks"])


# ------------------------------------------------------------------ q2: refuse an open
Q2_PARTS = ["refuses opening the file in the sandbox with EPERM", "for writing too",
            "by any name (a hard link to it)", "other files open in the sandbox", "only the sandbox"]


def _observe_open(answer) -> dict:
    """The target: a file of the checker's (-DLK12_INO is its inode), a hard link to it (the same inode by
    another name) and another file. In a: open the target and read it, open it for writing, open the hard
    link, open the other file, run /bin/true (which opens its libraries); in b: open the target. The guard
    opens the target from the checker's process."""
    d = tempfile.mkdtemp(prefix="lk12-q2-")
    try:
        target, other, link = (os.path.join(d, n) for n in ("secret", "notes", "secret-link"))
        for p in (target, other):
            with open(p, "w") as f:
                f.write("lesson 12\n")
        os.link(target, link)
        tries = {"a": [["open", "read", target], ["write", "write", target], ["open via link", "open", link],
                       ["open other", "open", other], ["exec", "exec", shutil.which("true") or "/bin/true"]],
                 "b": [["b open", "open", target]]}
        return _observe(answer, "lk12-q2", {"target": target}, tries, {"open": [target]})
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _diagnose_open(obs: dict) -> tuple[str, dict]:
    """The verdict on q2 from the errno of each try (0: it worked; 1: EPERM; 1000 + errno: opened, read refused)."""
    _machine_wide(obs, Q2_PARTS, "the open")
    t = obs["tried"]
    c = Checklist()
    nothing = (f"the file opened in the sandbox ({errno_name(t['open'])}): nothing was refused. In "
               "LSM_PROBE(file_open, struct file *file), return -EPERM when bpf_get_current_cgroup_id() == "
               "LK12_CGROUP and file->f_inode->i_ino == LK12_INO (0 lets the open go on)")
    c.part("refuses opening the file in the sandbox with EPERM", *_refused_with_eperm(t["open"], nothing))
    c.part("for writing too", t["open"] != EPERM or t["write"] == EPERM,
           f"opened for writing, it was not refused ({errno_name(t['write'])}): the task refuses every open of the "
           "file. file_open runs for every mode: do not test file->f_mode")
    c.part("by any name (a hard link to it)", t["open"] != EPERM or t["open via link"] == EPERM,
           f"opened by another name (a hard link: the same file) it was not refused ({errno_name(t['open via link'])})"
           ": a name is not the file. Test the inode (file->f_inode->i_ino), not the name of the path or dentry")
    others = {"another file": t["open other"], "running /bin/true": t["exec"]}
    broken = {k: v for k, v in others.items() if v != 0}
    c.part("other files open in the sandbox", not broken,
           "in the sandbox " + " and ".join(f"{k} failed too ({errno_name(v)})" for k, v in broken.items())
           + ": every open there is refused (a program opens its libraries as it starts). Refuse only when the "
           "file's inode is LK12_INO")
    c.part("only the sandbox", t["b open"] == 0,
           f"a process in cgroup b, beside the sandbox, could not open it either ({errno_name(t['b open'])}): "
           "refuse only when bpf_get_current_cgroup_id() == LK12_CGROUP")
    return c.done("yes: in the sandbox the file was refused with EPERM, for reading and writing and by its other "
                  "name, while other files opened and programs ran; beside the sandbox and outside it, it opened",
                  hooks=obs["hooks"])


def build() -> Lesson:
    """The exercises of lesson 12."""
    return Lesson("12", "security (BPF LSM)", [
        Exercise(
            "q1",
            "Write a BPF LSM program that refuses, with EPERM, to run the program whose file has inode LK12_INO "
            "— in the processes of cgroup LK12_CGROUP only. Everything else runs: other programs in that cgroup, "
            "the same program elsewhere, and reading its file. The checker passes -DLK12_CGROUP (its sandbox's "
            "id) and -DLK12_INO (a copy of /bin/true it made), and runs things inside the sandbox, beside it and "
            "outside it.",
            Check(_observe_exec, _diagnose_exec),
            "LSM_PROBE(bprm_check_security, struct linux_binprm *bprm) runs at every exec, with the file about to "
            "run in bprm->file (its inode: bprm->file->f_inode->i_ino). bpf_get_current_cgroup_id() is the "
            "cgroup of the process that execs. Return -EPERM to refuse, 0 to let it run.",
            lambda: snippet_text("solution_12_deny_exec"),
            lambda: "solution_12_deny_exec",
            "c",
        ),
        Exercise(
            "q2",
            "Write a BPF LSM program that refuses, with EPERM, every open of the file whose inode is LK12_INO — "
            "in the processes of cgroup LK12_CGROUP only, by whatever name and for reading or writing. Other "
            "files open, and the same file opens elsewhere. The checker passes -DLK12_CGROUP and -DLK12_INO (a "
            "file it made, with a second name: a hard link).",
            Check(_observe_open, _diagnose_open),
            "LSM_PROBE(file_open, struct file *file) runs at every open; file->f_inode->i_ino is the file's inode, "
            "whatever name was opened. Return -EPERM when bpf_get_current_cgroup_id() == LK12_CGROUP and the "
            "inode is LK12_INO, else 0.",
            lambda: snippet_text("solution_12_deny_open"),
            lambda: "solution_12_deny_open",
            "c",
        ),
    ])
