"""The README's Python example runs as written (an example nobody runs rots)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.kernel
@pytest.mark.requires("root")
def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "README has no python example"
    code = blocks[0] + textwrap_checks()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "README-OK" in r.stdout


def textwrap_checks() -> str:
    # what the comments in the example promise
    return (
        "\nassert s.source in ('tracepoint:task:task_newtask', 'kprobe:kernel_clone'), s.source\n"
        "assert not labkit.live_attachments()\n"
        "print('README-OK')\n"
    )
