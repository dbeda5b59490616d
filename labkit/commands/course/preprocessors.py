"""labkit's two nbgrader preprocessors, named in the course's nbgrader_config.py.

* :class:`ClearToStarter` (generate_assignment): a solution region is replaced
  by the lesson's own starter (kept in the cell's ``labkit.starter``
  metadata), so a ``%%bpf`` cell gets the lesson's unanswered C, not
  nbgrader's Python stub.
* :class:`GradeExecute` (autograde): nbgrader's Execute, with what the real
  kernel needs: what dead owners left is reaped before the kernel starts; a
  kernel that dies (killed, crashed) leaves the notebook graded on what ran —
  every test cell that did not run gets an error, so it scores zero instead of
  nbgrader's "no output = full marks"; after the kernel is gone everything it
  still owned (its sandboxes, its netlink XDP and TC) is given back.
  Per-cell timeouts are nbgrader's own (``Execute.timeout``, interrupt, then
  an error in that cell).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader import utils as nbgrader_utils
from nbgrader.preprocessors import ClearSolutions, Execute

from labkit.commands.report.runner import give_back
from labkit.net.leftovers import reap_dead_owners

__all__ = ["ClearToStarter", "GradeExecute", "KERNEL_DIED"]

KERNEL_DIED = "KernelDied"


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
    """nbgrader's Execute, with reaping, a dead kernel graded on what ran, and give-back."""

    def create_kernel_manager(self):
        # the kernel (root) talks to us over Unix sockets in a private directory, not TCP on loopback
        km = super().create_kernel_manager()
        self._sockets = tempfile.TemporaryDirectory(prefix="labkit-grade-")
        km.transport = "ipc"
        km.ip = os.path.join(self._sockets.name, "kernel")
        return km

    def preprocess(self, nb, resources=None, km=None):
        self._sockets = None
        self.kernel_pid = None
        self.gave_back = []
        self.started = -1

        def on_start(**_: Any) -> None:
            prov = getattr(self.km, "provisioner", None)
            pid = getattr(prov, "pid", None) or getattr(getattr(prov, "process", None), "pid", None)
            self.kernel_pid = int(pid) if pid else None

        self.on_notebook_start = on_start
        reap_dead_owners()
        try:
            return super().preprocess(nb, resources, km)
        except DeadKernelError as e:
            self._kernel_died(nb, str(e))
            return nb, resources
        finally:
            self.gave_back = give_back(self.kernel_pid)
            for line in self.gave_back:
                self.log.warning("labkit: gave back what the submission's kernel left: %s", line)
            if self._sockets is not None:
                self._sockets.cleanup()

    def preprocess_cell(self, cell, resources, index):
        self.started = index
        return super().preprocess_cell(cell, resources, index)

    def _kernel_died(self, nb, why: str) -> None:
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or i < self.started:
                continue
            if i == self.started or nbgrader_utils.is_grade(cell):
                where = "in this cell" if i == self.started else f"in cell {self.started + 1}, before this cell ran"
                cell.outputs.append(NotebookNode(
                    output_type="error", ename=KERNEL_DIED,
                    evalue=f"the kernel died {where} ({why.splitlines()[0] if why else 'no reason given'}); "
                           "the notebook is graded on what ran",
                    traceback=[f"{KERNEL_DIED}: the kernel died {where}; the notebook is graded on what ran"]))
