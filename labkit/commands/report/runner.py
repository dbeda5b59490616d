"""Running one notebook for a report: execute it headless (nbclient, the
``labkit`` kernel), say which cell failed, give back what its kernel left in
the kernel, and write the HTML."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.commands.report.export import export_html, failed_banner, info_banner
from labkit.commands.report.offline import external_references
from labkit import owners
from labkit._renamed import renamed_function
from labkit.net.leftovers import Leftovers, reap_dead_owners

__all__ = ["DEFAULT_KERNEL", "DEFAULT_TIMEOUT", "Result", "give_back", "reap_kernel", "run_notebook"]

DEFAULT_TIMEOUT = 180
DEFAULT_KERNEL = "labkit"


@dataclass
class Result:
    """What happened to one notebook."""

    notebook: Path
    html: Path | None = None
    ok: bool = False
    error: str = ""
    seconds: float = 0.0
    kernel_pid: int | None = None
    widgets: int = 0
    gave_back: list[str] = field(default_factory=list)   # what had to be removed after the kernel ended


def _failed_cell(nb: Any) -> tuple[int, dict[str, Any]] | None:
    code_i = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        code_i += 1
        if "raises-exception" in (cell.get("metadata", {}).get("tags") or []):
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                return code_i, o
    return None


def reap_kernel(kernel_pid: int | None, wait: float = 10.0) -> list[str]:
    """After a kernel ended: reap what it still owns (sandboxes, netlink XDP
    attaches recorded with its pid). Normally labkit's exit handlers have done
    it already and this returns []; after a killed kernel it lists what it removed."""
    if not kernel_pid:
        return []
    if not owners.wait_gone(kernel_pid, wait):
        return [f"kernel process {kernel_pid} is still running after shutdown; left alone"]
    done: list[str] = []
    Leftovers.find(owner_pid=kernel_pid).remove(out=done.append)
    return done


#: the old name, for one release (labkit._renamed)
give_back = renamed_function("give_back", reap_kernel)


def run_notebook(path: Path, out_dir: Path, *, timeout: int = DEFAULT_TIMEOUT,
                 kernel_name: str = DEFAULT_KERNEL) -> Result:
    """Execute one notebook and write ``out_dir/<name>.html``; never raises for
    a notebook's own failure (see ``Result.ok`` / ``Result.error``). What dead
    owners left is removed first (one line on stderr when there was any)."""
    import nbformat  # lazy (with nbclient): heavy, only running a notebook needs them
    from nbclient import NotebookClient
    from traitlets.config import Config
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    reap_dead_owners()
    path = Path(path).resolve()
    name = path.stem
    res = Result(notebook=path)
    t0 = time.monotonic()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:
        res.error = f"cannot read {path}: {e}"
        res.seconds = time.monotonic() - t0
        return res

    # the kernel talks to us over Unix sockets in a private directory, not TCP on
    # loopback: nothing else on the machine can reach a root kernel (and the
    # kernel does not warn about unencrypted TCP for every lesson)
    sockets = tempfile.TemporaryDirectory(prefix="labkit-report-")
    ipc = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets.name, "kernel")}})
    client = NotebookClient(
        nb, config=ipc, kernel_name=kernel_name, timeout=timeout, startup_timeout=120,
        allow_errors=False, store_widget_state=True, record_timing=True,
        shutdown_kernel="graceful", resources={"metadata": {"path": str(path.parent)}},
    )

    def on_start(**_: Any) -> None:
        prov = getattr(client.km, "provisioner", None)
        pid = getattr(prov, "pid", None) or getattr(getattr(prov, "process", None), "pid", None)
        res.kernel_pid = int(pid) if pid else None

    client.on_notebook_start = on_start
    error = ""
    try:
        client.execute(cwd=str(path.parent))
    except CellTimeoutError as e:
        error = f"a cell did not finish within {timeout} s (--timeout): {str(e).splitlines()[0] if str(e) else ''}"
    except DeadKernelError as e:
        error = f"the kernel died while running: {e}"
    except CellExecutionError as e:
        where = _failed_cell(nb)
        cell = f"code cell {where[0]}" if where else "a cell"
        error = (f"{cell} raised {e.ename}: {e.evalue} (tag the cell 'raises-exception' "
                 "if that error is part of the lesson)")
    except Exception as e:  # kernel missing, cannot start, ...
        error = f"{type(e).__name__}: {e}"
        if "No such kernel" in str(e) or type(e).__name__ == "NoSuchKernel":
            error += f" (the report runs on the '{kernel_name}' kernel: ./lab setup installs it)"
    finally:
        # nbclient shuts the kernel down (graceful: labkit's exit handlers run)
        res.gave_back = reap_kernel(res.kernel_pid)
        sockets.cleanup()
    res.widgets = 0
    banner_info = info_banner(path.name, kernel_name, time.monotonic() - t0)
    try:
        body, snap = export_html(nb, name=name, path=path.parent,
                                 banner=(failed_banner(error) if error else "") + banner_info)
        res.widgets = snap.rendered
        refs = external_references(body)
        if refs and not error:
            error = ("the HTML would load from outside the file (the report must work offline): "
                     + "; ".join(refs[:5]) + (f" (+{len(refs) - 5} more)" if len(refs) > 5 else ""))
            body, _ = export_html(nb, name=name,
                                  path=path.parent, banner=failed_banner(error) + banner_info)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{name}.html"
        tmp = target.with_suffix(".html.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, target)
        res.html = target
    except Exception as e:
        error = error or f"export to HTML failed: {type(e).__name__}: {e}"
    res.error = error
    res.ok = not error
    res.seconds = time.monotonic() - t0
    return res

