"""A %%bpf cell is C in JupyterLab's editor (labkit/views/labextensions/labkit-bpf-cells,
a prebuilt extension written by hand): highlighted and indented as C, while the
notebook's other cells stay Python, also once the kernel has said its language,
and a cell that gains or loses its %%bpf line changes with it. JupyterLab runs
from scripts/start-jupyter.sh (loopback, token) in headless Debian chromium that
reaches nothing but 127.0.0.1; start-jupyter.sh loads the extension (--LabApp.extra_labextensions_path), as `./lab start` does."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest

from fixtures.chromium import ARTIFACTS, chromium, external_requests, require_chromium
from test_browser import Server

REPO = Path(__file__).resolve().parent.parent
EXTENSIONS = REPO / "labkit" / "views" / "labextensions"
EXTENSION = EXTENSIONS / "labkit-bpf-cells"

BPF = ("%%bpf my_program\n"
       "// the kernel's view: a ' in a comment is not a string\n"
       "BPF_ARRAY(calls, u64, 1);\n"
       "TRACEPOINT_PROBE(syscalls, sys_enter_getppid)\n"
       "{\n"
       "    return 0;\n"
       "}")
PY = "print('python stays python')"


def test_the_extension_is_complete_and_its_file_is_named_by_its_content():
    pkg = json.loads((EXTENSION / "package.json").read_text())
    assert pkg["name"] == EXTENSION.name
    load = EXTENSION / pkg["jupyterlab"]["_build"]["load"]
    assert load.is_file() and pkg["jupyterlab"]["_build"]["extension"] == "./extension"
    digest = hashlib.sha256(load.read_bytes()).hexdigest()[:12]
    # browsers cache it by name: a changed file gets a new name (static/remoteEntry.<sha256[:12]>.js)
    assert load.name == f"remoteEntry.{digest}.js", f"rename {load.name} to remoteEntry.{digest}.js (package.json too)"


def languages(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')]
        .map(c => (c.querySelector('.cm-content') || {}).dataset?.language || '')""")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_bpf_cell_is_c_in_jupyterlab(tmp_path, monkeypatch):
    require_chromium()
    name = f"zz-labkit-bpf-cells-{os.getpid()}.ipynb"
    nb = {"nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "labkit", "display_name": "labkit", "language": "python"},
                       "language_info": {"name": "python", "codemirror_mode": {"name": "ipython", "version": 3}}},
          "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src, "outputs": [],
                     "execution_count": None} for i, src in enumerate([PY, BPF, PY])]}
    server = Server(tmp_path)
    server.start()
    try:
        server.api("PUT", f"/api/contents/{name}", {"type": "notebook", "format": "json", "content": nb})
        with chromium(tmp_path / "chromium", allow_hosts=("127.0.0.1",)) as b:
            page = b.page()
            page.set_default_timeout(30_000)
            page.goto(f"{server.base}/lab/tree/{name}?token={server.token}", wait_until="domcontentloaded")
            page.locator(".jp-NotebookPanel .jp-CodeCell .cm-content").nth(2).wait_for(state="visible",
                                                                                      timeout=60_000)
            server.wait_session(name, timeout=60, page=page)      # the kernel said its language: still C
            page.wait_for_function("""() => [...document.querySelectorAll('.jp-NotebookPanel .cm-content')]
                .map(c => c.dataset.language).join() === 'python,cpp,python'""", timeout=20_000)
            # the C comment's ' opens no string: the rest of the cell is not one long string
            strings = page.evaluate("""() => {
                const c = document.querySelectorAll('.jp-NotebookPanel .cm-content')[1];
                const color = s => getComputedStyle(s).color;
                const quote = [...c.querySelectorAll('span')].find(s => s.textContent.includes("' in a comment"));
                const macro = [...c.querySelectorAll('span')].find(s => s.textContent === 'TRACEPOINT_PROBE');
                return {comment: quote && color(quote), after: macro ? color(macro) : color(c)}; }""")
            assert strings["comment"] and strings["comment"] != strings["after"], strings
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "bpf-cell-is-c.png"))
            # a cell that gains a %%bpf line becomes C; losing it, Python again
            third = page.locator(".jp-NotebookPanel .jp-CodeCell .cm-content").nth(2)
            third.click()
            page.keyboard.press("Control+Home")
            page.keyboard.type("%%bpf another\n")
            page.wait_for_function("""() => document.querySelectorAll('.jp-NotebookPanel .cm-content')[2]
                .dataset.language === 'cpp'""", timeout=10_000)
            page.keyboard.press("Control+Home")
            page.keyboard.press("Shift+End")
            page.keyboard.press("Delete")
            page.wait_for_function("""() => document.querySelectorAll('.jp-NotebookPanel .cm-content')[2]
                .dataset.language === 'python'""", timeout=10_000)
            assert languages(page) == ["python", "cpp", "python"]
            assert external_requests(b) == []
    finally:
        try:
            sessions = [s for s in server.api("GET", "/api/sessions") if s.get("path", "").endswith(name)]
            for s in sessions:
                server.api("DELETE", f"/api/sessions/{s['id']}")
            server.api("DELETE", f"/api/contents/{name}")
        finally:
            server.stop()
