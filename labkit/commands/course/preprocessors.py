"""labkit's two nbgrader preprocessors, named in the course's nbgrader_config.py.

* :class:`ClearToStarter` (generate_assignment): a solution region is replaced
  by the lesson's own starter (kept in the cell's ``labkit.starter``
  metadata), so a ``%%bpf`` cell gets the lesson's unanswered C, not
  nbgrader's Python stub.
* :class:`GradeExecute` (autograde): nbgrader's Execute, with what the real
  kernel needs: what dead owners left is reaped before the kernel starts; the
  kernel gets the course's grading settings (labkit.toml: weights, gates,
  rounding, what a copy of the reference earns) in its environment; a
  kernel that dies (killed, crashed) leaves the notebook graded on what ran —
  every test cell that did not run gets an error, so it scores zero instead of
  nbgrader's "no output = full marks", and the messages name the cell as the
  student sees it ("In [5]"); after the kernel is gone everything it
  still owned (its sandboxes, its netlink XDP and TC) is given back.
  Per-cell timeouts are nbgrader's own (``Execute.timeout``, interrupt, then
  an error in that cell); the cells they stopped are recorded. What happened
  (seconds, cells stopped by the timeout, the cell the kernel died in, what
  was given back) is kept in the autograded notebook's metadata
  (``metadata.labkit.grading``) for ``labkit course autograde``'s report.

  With ``executed_dir`` set, a submission already executed elsewhere (in its
  own VM: ``labkit course autograde --vm``, labkit/commands/course/vmgrade.py) is not run
  again: its outputs are taken from
  ``executed_dir/STUDENT/ASSIGNMENT/NOTEBOOK``, cell by cell, after checking
  that every cell's source is the one being graded.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from nbclient.exceptions import DeadKernelError
import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader import utils as nbgrader_utils
from nbgrader.preprocessors import ClearSolutions, Execute
from traitlets import Unicode

from labkit.commands.course.cell import GRADING_ENV
from labkit.commands.course.settings import grading_payload, load_settings
from labkit.commands.report.runner import reap_kernel
from labkit.exercises.framework import REFERENCE_POLICY_ENV
from labkit.net.leftovers import reap_dead_owners

__all__ = ["ClearToStarter", "GradeExecute", "KERNEL_DIED", "course_root_of", "replay_outputs"]

KERNEL_DIED = "KernelDied"


def course_root_of(configured: str, resources: dict | None) -> Path:
    """The course directory: the one configured, else where the gradebook is (``sqlite:///ROOT/gradebook.db``),
    else the working directory (where nbgrader is run by hand)."""
    if configured:
        return Path(configured)
    url = str(((resources or {}).get("nbgrader") or {}).get("db_url") or "")
    if url.startswith("sqlite:///") and url.endswith(".db"):
        return Path(url[len("sqlite:///"):]).parent
    return Path.cwd()


class ClearToStarter(ClearSolutions):
    """ClearSolutions whose stub is the cell's own starter (``metadata.labkit.starter``)."""

    def preprocess_cell(self, cell, resources, cell_index):
        starter = (cell.get("metadata", {}).get("labkit") or {}).get("starter")
        if starter is None:
            return super().preprocess_cell(cell, resources, cell_index)
        language = resources["language"]
        saved = dict(self.code_stub)
        self.code_stub = {**saved, language: starter}
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        finally:
            self.code_stub = saved


class GradeExecute(Execute):
    """nbgrader's Execute, with reaping, the course's grading settings in the kernel's environment,
    a dead kernel graded on what ran, timeouts recorded, and what a dead kernel left reaped."""

    course_root = Unicode("", help="the course directory (its labkit.toml); default: the gradebook's").tag(config=True)
    executed_dir = Unicode("", help="take each submission's outputs from here (executed elsewhere: "
                                    "STUDENT/ASSIGNMENT/NOTEBOOK) instead of running it").tag(config=True)

    def create_kernel_manager(self):
        # the kernel (root) talks to us over Unix sockets in a private directory, not TCP on loopback
        km = super().create_kernel_manager()
        self._sockets = tempfile.TemporaryDirectory(prefix="labkit-grade-")
        km.transport = "ipc"
        km.ip = os.path.join(self._sockets.name, "kernel")
        return km

    def preprocess(self, nb, resources=None, km=None):
        if self.executed_dir:
            info = (resources or {}).get("nbgrader") or {}
            name = str(info.get("notebook") or "")
            path = Path(self.executed_dir) / str(info.get("student")) / str(info.get("assignment")) / f"{name}.ipynb"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: this submission was not executed (labkit course autograde --vm)")
            replay_outputs(nb, nbformat.read(path, as_version=4), path)
            return nb, resources
        self._sockets = None
        self.kernel_pid = None
        self.gave_back = []
        self.started = -1
        self.timed_out = []          # the cells the timeout stopped
        self.died_in = None          # the execution count of the cell the kernel died in
        t0 = time.monotonic()
        settings = load_settings(course_root_of(self.course_root, resources))
        assignment = str(((resources or {}).get("nbgrader") or {}).get("assignment") or "")
        env = {GRADING_ENV: json.dumps(grading_payload(settings, assignment)), REFERENCE_POLICY_ENV: settings.reference}
        saved = {k: os.environ.get(k) for k in env}

        def on_start(**_: Any) -> None:
            prov = getattr(self.km, "provisioner", None)
            pid = getattr(prov, "pid", None) or getattr(getattr(prov, "process", None), "pid", None)
            self.kernel_pid = int(pid) if pid else None

        self.on_notebook_start = on_start
        reap_dead_owners()
        os.environ.update(env)       # the kernel starts inside super().preprocess and inherits these
        try:
            return super().preprocess(nb, resources, km)
        except DeadKernelError as e:
            self._kernel_died(nb, str(e))
            return nb, resources
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self.gave_back = reap_kernel(self.kernel_pid)
            for line in self.gave_back:
                self.log.warning("labkit: gave back what the submission's kernel left: %s", line)
            if self._sockets is not None:
                self._sockets.cleanup()
            timeouts = [c.get("execution_count") for c in self.timed_out]
            for n in timeouts:
                self.log.warning("labkit: the timeout (%ss) stopped In [%s]", self.timeout, n)
            nb.metadata.setdefault("labkit", {})["grading"] = {
                "seconds": round(time.monotonic() - t0, 1), "timeouts": timeouts, "kernel_died": self.died_in,
                "gave_back": list(self.gave_back), "reference": settings.reference, "decimals": settings.decimals}

    async def _async_handle_timeout(self, timeout, cell=None):
        # nbclient's: interrupt the kernel (interrupt_on_timeout); here also remember which cell it stopped
        if cell is not None and all(c is not cell for c in self.timed_out):
            self.timed_out.append(cell)
        return await super()._async_handle_timeout(timeout, cell)

    def preprocess_cell(self, cell, resources, index):
        self.started = index
        return super().preprocess_cell(cell, resources, index)

    def _kernel_died(self, nb, why: str) -> None:
        # the cell as the student sees it: its execution count ("In [5]"), not its index among all cells
        dying = nb.cells[self.started] if 0 <= self.started < len(nb.cells) else None
        n = ((dying.get("execution_count") if dying is not None else None)
             or getattr(self, "code_cells_executed", 0) or None)
        if dying is not None and n and not dying.get("execution_count"):
            dying["execution_count"] = n
        self.died_in = n
        said = f"In [{n}]" if n else f"cell {self.started + 1}"
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or i < self.started:
                continue
            if i == self.started or nbgrader_utils.is_grade(cell):
                where = f"in this cell ({said})" if i == self.started else f"in {said}, before this cell ran"
                cell.outputs.append(NotebookNode(
                    output_type="error", ename=KERNEL_DIED,
                    evalue=f"the kernel died {where} ({why.splitlines()[0] if why else 'no reason given'}); "
                           "the notebook is graded on what ran",
                    traceback=[f"{KERNEL_DIED}: the kernel died {where}; the notebook is graded on what ran"]))


def replay_outputs(nb: NotebookNode, executed: NotebookNode, where: object = "the executed notebook") -> None:
    """Put ``executed``'s outputs (and execution counts, and labkit's grading record) into ``nb``,
    cell by cell; every cell's source must be the same (the same submission after nbgrader's
    overwrite of locked cells), else ValueError."""
    cells = executed.cells
    if len(cells) != len(nb.cells):
        raise ValueError(f"{where} has {len(cells)} cells, the submission {len(nb.cells)}: not the same notebook")
    for i, (mine, done) in enumerate(zip(nb.cells, cells)):
        if mine.source != done.source:
            raise ValueError(f"{where}: cell {i + 1} differs from the submission's: not the same notebook")
        if mine.cell_type == "code":
            mine.outputs = copy.deepcopy(done.get("outputs", []))
            mine.execution_count = done.get("execution_count")
    grading = executed.metadata.get("labkit", {}).get("grading")
    if grading is not None:
        nb.metadata.setdefault("labkit", {})["grading"] = copy.deepcopy(grading)
