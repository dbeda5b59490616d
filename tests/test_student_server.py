"""A student's JupyterLab (scripts/start-jupyter.sh, as `./lab start` and the
VMs run it) has nbgrader's instructor tools switched off — Create Assignment,
Formgrader, Course List, the Nbgrader menu — and `--instructor` keeps them.
Read from the page configuration JupyterLab serves (what the browser loads)."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from test_browser import Server

INSTRUCTOR_ONLY = {"@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                   "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:menu"}


def _page_config(server: Server) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(f"{server.base}/lab", headers={"Authorization": f"token {server.token}"})
    with opener.open(req, timeout=30) as r:
        page = r.read().decode()
    m = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
    assert m, page[:2000]
    return json.loads(m.group(1))


def _disabled(cfg: dict) -> set[str]:
    d = cfg.get("disabledExtensions") or []
    return set(d if isinstance(d, list) else [k for k, v in d.items() if v])


@pytest.mark.slow
@pytest.mark.parametrize("args, hidden", [((), True), (("--instructor",), False)])
def test_nbgrader_instructor_tools_are_off_on_a_students_server(tmp_path, args, hidden):
    server = Server(tmp_path, *args)
    try:
        server.start()
        cfg = _page_config(server)
    finally:
        server.stop()
    # the extension itself is installed either way (nbgrader is a dependency): only its instructor plugins go
    assert "@jupyter/nbgrader" in json.dumps(cfg.get("federated_extensions", [])), cfg.get("federated_extensions")
    if hidden:
        assert INSTRUCTOR_ONLY <= _disabled(cfg), _disabled(cfg)
        assert "@jupyter/nbgrader:validate-assignment" not in _disabled(cfg)   # students may validate
    else:
        assert not INSTRUCTOR_ONLY & _disabled(cfg), _disabled(cfg)
