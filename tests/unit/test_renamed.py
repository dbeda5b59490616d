"""One word per act (docs/ARCHITECTURE.md): each old name still works for one
release, warns with a DeprecationWarning that names its replacement, and does
what the new name does. The kernel-side objects are in tests/test_old_names.py."""

from __future__ import annotations

import pytest

import labkit
from labkit import attach, owners
from labkit._renamed import renamed_function, renamed_method
from labkit.attach import Attachment


class _Program:
    """What an Attachment needs of its program when nothing is on the kernel: a name, close()."""

    name = "fake"

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Hooked(Attachment):
    kind = "test"

    def __init__(self, key: tuple):
        super().__init__(key=key, target="nowhere", program=_Program(), lab=None, hook="test hook")
        self.hooks_taken_off = 0

    def detach_hook(self) -> None:
        self.hooks_taken_off += 1


def _claimed(name: str) -> _Hooked:
    att = _Hooked(("test", "renamed", name))
    owners.claim(att, att.detach)
    return att


def test_a_renamed_method_warns_naming_the_new_one_and_calls_it() -> None:
    class Thing:
        def stop(self, state: str = "stopped") -> str:
            return f"stop({state})"

        halt = renamed_method("halt", "stop")

    with pytest.warns(DeprecationWarning, match=r"Thing\.halt\(\) is renamed stop\(\).*next release"):
        assert Thing().halt("replaced") == "stop(replaced)"
    assert Thing.halt.__name__ == "halt" and "stop" in Thing.halt.__doc__


def test_a_renamed_function_warns_naming_the_new_one_and_calls_it() -> None:
    def new(x: int) -> int:
        return x + 1

    old = renamed_function("old", new)
    with pytest.warns(DeprecationWarning, match=r"old\(\) is renamed new\(\)"):
        assert old(1) == 2
    assert old.__name__ == "old"


def test_attachment_give_back_is_detach() -> None:
    att = _claimed("give_back")
    with pytest.warns(DeprecationWarning, match=r"give_back\(\) is renamed detach\(\)"):
        att.give_back("replaced")
    assert att.state == "replaced" and att.hooks_taken_off == 1 and att.program.closed
    assert owners.held(att.key) is None
    att.detach()                                # idempotent: nothing more comes off
    assert att.hooks_taken_off == 1 and att.state == "replaced"


def test_attachment_unhook_is_detach_hook() -> None:
    att = _Hooked(("test", "renamed", "unhook"))
    with pytest.warns(DeprecationWarning, match=r"unhook\(\) is renamed detach_hook\(\)"):
        att.unhook()
    assert att.hooks_taken_off == 1 and att.state == "attached"     # only the kind's part, as before


def test_close_all_is_detach_all() -> None:
    atts = [_claimed("close_all 1"), _claimed("close_all 2")]
    with pytest.warns(DeprecationWarning, match=r"close_all\(\) is renamed detach_all\(\)"):
        labkit.close_all()
    assert [a.state for a in atts] == ["detached", "detached"]
    assert not any(a in labkit.live_attachments() for a in atts)
    assert labkit.close_all.__name__ == "close_all" and "close_all" in labkit.__all__ and "detach_all" in labkit.__all__


def test_detach_all_detaches_newest_first() -> None:
    order: list[str] = []
    atts = [_claimed("order 1"), _claimed("order 2")]
    for a in atts:
        a.detach_hook = (lambda a=a: order.append(a.key[2]))
    labkit.detach_all()
    assert order == ["order 2", "order 1"] and all(not a.attached for a in atts)


def test_attach_release_is_owners_forget() -> None:
    att = _claimed("release")
    with pytest.warns(DeprecationWarning, match=r"release\(\) is renamed forget\(\)"):
        attach.release(att)
    try:
        assert owners.held(att.key) is None and att.attached      # forgotten, not given back
    finally:
        att.detach()


def test_report_give_back_is_reap_kernel() -> None:
    from labkit.commands import report

    with pytest.warns(DeprecationWarning, match=r"give_back\(\) is renamed reap_kernel\(\)"):
        assert report.give_back(None) == []          # no kernel: nothing to reap


def test_hub_limits_release_is_remove(tmp_path) -> None:
    from labkit.hub import limits

    (tmp_path / "cgroup.controllers").write_text("memory cpu\n")      # a unified (v2) layout, in a temp dir
    vm = tmp_path / limits.GROUP / "lkvm-test"
    vm.mkdir(parents=True)
    with pytest.warns(DeprecationWarning, match=r"release\(\) is renamed remove\(\)"):
        limits.release("lkvm-test", root=tmp_path)
    assert not vm.exists() and not vm.parent.exists()     # the VM's group, and labkit-hub with its last VM
