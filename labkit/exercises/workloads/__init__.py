"""The programs lesson 10 profiles: small C programs whose hot functions and
waits are known, compiled here with frame pointers so that a BPF stack walk
sees every one of their frames.

    exe = build("busy")      # a path to lk_busy, compiled once per process into a temporary directory

Each program's header comment says what it does and how it talks on its
stdin and stdout (it says "ready", waits for a line, works, says "done").
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

from labkit._errors import ArgumentError, NotSupportedError

__all__ = ["COMPILER", "FLAGS", "WORKLOADS", "build", "source"]

HERE = Path(__file__).resolve().parent
#: the workloads by name: (the C file, the executable's name, extra flags)
WORKLOADS = {"busy": ("busy.c", "lk_busy", ["-pthread"]), "waiter": ("waiter.c", "lk_waiter", [])}
#: clang is one of the lab's own packages (scripts/setup.sh installs it for lesson 09)
COMPILER = "clang"
#: -O0 keeps every function (and nothing inlined), -fno-omit-frame-pointer gives each a frame pointer, -g its lines
FLAGS = ["-O0", "-g", "-fno-omit-frame-pointer"]
_built: dict[str, Path] = {}
_dir: list[Path] = []


def source(name: str) -> str:
    """The C source of workload ``name``."""
    if name not in WORKLOADS:
        raise ArgumentError(f"no workload {name!r}: the workloads are {', '.join(WORKLOADS)}")
    return (HERE / WORKLOADS[name][0]).read_text()


def _workdir() -> Path:
    if not _dir:
        _dir.append(Path(tempfile.mkdtemp(prefix="labkit-workloads-")))
        atexit.register(shutil.rmtree, _dir[0], True)
    return _dir[0]


def build(name: str) -> Path:
    """Compile workload ``name`` (once per process) and return its executable's path.
    The directory is removed when the process exits."""
    if name in _built and _built[name].exists():
        return _built[name]
    src, exe, extra = WORKLOADS[name] if name in WORKLOADS else source(name)
    cc = shutil.which(COMPILER)
    if cc is None:
        raise NotSupportedError(f"lesson 10 compiles its workloads with {COMPILER}, which is not installed: "
                                "./lab setup installs it (apt-get install clang)", feature=COMPILER)
    out = _workdir() / exe
    r = subprocess.run([cc, *FLAGS, *extra, "-o", str(out), str(HERE / src)], capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise NotSupportedError(f"{COMPILER} could not compile the workload {src}:\n{r.stderr.strip()}",
                                feature=COMPILER)
    _built[name] = out
    return out
