"""pytest plugin (``-p hookreport``) used by the stock-kernel guest run: records
which hook every labkit call in every test used, prints a table at the end and
writes it as JSON to $LABKIT_HOOK_REPORT.

It wraps the public ``Lab.trace_*`` and ``Lab.attach_*`` methods (whatever
exists in the checkout) and reads the returned handle's ``source`` / ``hook`` /
``mode``; nothing in labkit is changed.
"""

from __future__ import annotations

import functools
import json
import os

import pytest

_current = {"test": "<outside a test>"}
_records: list[dict] = []


def _describe(result) -> dict:
    out = {"returned": type(result).__name__}
    for attr in ("source", "hook", "mode", "attach_mode", "link"):
        try:
            v = getattr(result, attr)
        except Exception:
            continue
        if v is None or callable(v):
            continue
        out[attr] = v if isinstance(v, (str, int, float, bool)) else repr(v)
    return out


def _wrap(name, fn):
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        rec = {"test": _current["test"], "call": name, "args": [repr(a)[:60] for a in args],
               "kwargs": {k: repr(v)[:60] for k, v in kwargs.items()}}
        try:
            result = fn(self, *args, **kwargs)
        except BaseException as e:
            rec["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            _records.append(rec)
            raise
        rec.update(_describe(result))
        _records.append(rec)
        return result
    wrapper.__labkit_hookreport__ = True
    return wrapper


def pytest_configure(config):
    try:
        import labkit
    except Exception as e:  # the test run reports the import error itself
        print(f"hookreport: labkit does not import ({e}); no hook report")
        return
    for name in dir(labkit.Lab):
        if not (name.startswith("trace_") or name.startswith("attach_")):
            continue
        fn = getattr(labkit.Lab, name)
        if callable(fn) and not getattr(fn, "__labkit_hookreport__", False):
            setattr(labkit.Lab, name, _wrap(name, fn))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current["test"] = item.nodeid
    yield
    _current["test"] = "<outside a test>"


def hook_of(rec: dict) -> str:
    if "error" in rec:
        return "error: " + rec["error"]
    parts = [str(rec[k]) for k in ("source", "hook") if k in rec]
    parts = list(dict.fromkeys(parts))  # source and hook are often the same text
    if "mode" in rec:
        parts.append(f"mode={rec['mode']}")
    return " ".join(parts) or rec.get("returned", "?")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    tr.section("labkit hooks used, per test")
    if not _records:
        tr.write_line("(no labkit trace_*/attach_* call was made)")
    for rec in _records:
        tr.write_line(f"HOOK {rec['test']} :: {rec['call']} -> {hook_of(rec)}")
    _write(os.environ.get("LABKIT_HOOK_REPORT"))


def pytest_sessionfinish(session, exitstatus):
    """A pytest-xdist worker prints no terminal summary: each writes its own
    records beside the report (``hooks.json.gw0``, ...), merged by ``main``."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    path = os.environ.get("LABKIT_HOOK_REPORT")
    if worker and path:
        _write(f"{path}.{worker}")


def _write(path):
    if path:
        with open(path, "w") as f:
            json.dump(_records, f, indent=1, default=str)


def main(argv):
    """``python hookreport.py FILE...``: the HOOK lines of saved reports (the
    controller's and every worker's), in one list."""
    for path in argv:
        try:
            with open(path) as f:
                records = json.load(f)
        except (OSError, ValueError):
            continue
        for rec in records:
            print(f"HOOK {rec['test']} :: {rec['call']} -> {hook_of(rec)}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
