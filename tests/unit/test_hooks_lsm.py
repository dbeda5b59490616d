"""labkit.hooks.lsm's pure parts: where the kernel's LSM list is read from, what the guard tries, and how a
verifier's refusal of a return value is told (the
kernel side, on a kernel that runs BPF LSM programs: tests/test_exercises_12.py and lesson 12)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import labkit
from labkit.hooks.lsm import _TRUE, LsmRangeError, active_lsms, guard_acts, range_refusal

NOWHERE = "/nonexistent/lsm"


def test_securityfs_first(tmp_path):
    f = tmp_path / "lsm"
    f.write_text("lockdown,capability,landlock,yama,apparmor,bpf")
    assert active_lsms(f, cmdline="lsm=selinux", config='CONFIG_LSM="x"') == (
        ["lockdown", "capability", "landlock", "yama", "apparmor", "bpf"], str(f))


def test_then_the_command_line_then_the_config():
    from pathlib import Path

    got = active_lsms(Path(NOWHERE), cmdline="console=ttyS0 lsm=landlock,lockdown,yama,bpf quiet", config="")
    assert got == (["landlock", "lockdown", "yama", "bpf"], "lsm= on the kernel command line")
    # what follows " -- " is init's, not the kernel's
    got = active_lsms(Path(NOWHERE), cmdline="quiet -- lsm=bpf", config='CONFIG_LSM="lockdown,yama,apparmor"\n')
    assert got == (["lockdown", "yama", "apparmor"], "CONFIG_LSM, the list the kernel was built with")
    assert active_lsms(Path(NOWHERE), cmdline="", config="")[0] is None


def test_the_guard_tries_the_callers_acts_first_opens_before_execs():
    assert guard_acts() == [("open", sys.executable), ("exec", _TRUE)]
    acts = guard_acts({"exec": [_TRUE], "open": ["/proc/version"]})
    assert acts == [("open", "/proc/version"), ("exec", _TRUE), ("open", sys.executable)]


@pytest.mark.parametrize("bad, says", [
    (["/bin/true"], "outside must be a dict"),
    ({"run": ["/bin/true"]}, "outside must be a dict"),
    ({"open": "/proc/version"}, "must be a list of paths"),
    ({"open": [NOWHERE]}, "which is not a file"),
    ({"exec": ["/proc/version"]}, "which is not executable"),
])
def test_bad_outside_is_an_argument_error(bad, says):
    with pytest.raises(labkit.ArgumentError, match=says):
        guard_acts(bad)


# ------------------------------------------------------------------ a return value the verifier cannot bound
# Two logs Debian's 6.12 printed (tests/stock_kernel/run, run-20261205-134958): it checks that an LSM program's
# r0 is provably in [-4095, 0] at every exit (commit 5d99e198be27), and it does not follow a negation.
DATA = Path(__file__).parent / "data" / "lsm612"


def test_a_negated_condition_is_named_with_the_way_round():
    log = (DATA / "negation.log").read_text()
    e = range_refusal("lsm__file_open", "your answer", log)
    assert isinstance(e, LsmRangeError) and isinstance(e, labkit.VerifierError)
    assert (e.low, e.high, e.negation, e.program) == (-4095, 0, True, "lsm__file_open")
    first = str(e).splitlines()[0]
    # the framework shows what follows the first ": " of the first line: the cause and the fix must be there
    shown = first.split(": ", 1)[1]
    assert shown.startswith("this kernel's verifier checks what an LSM program returns")
    assert "[-4095, 0]" in shown and "unknown scalar value" in shown and "r0 = -(condition)" in shown
    assert 'int deny = -EPERM; asm volatile("" : "+r"(deny));' in shown
    assert "12: (87) r6 = -r6" in str(e) and e.log.strip() == log.strip()


def test_a_map_value_is_told_to_return_constants():
    e = range_refusal("lsm__file_open", "lk_negative", (DATA / "map_read.log").read_text())
    assert e is not None and not e.negation
    first = str(e).splitlines()[0]
    assert "smin=0 smax=4294967295" in first and "not a verdict the verifier can bound" in first
    assert "r0 = -(condition)" not in first and "asm volatile" in first


def test_a_negation_of_a_value_of_its_own_is_not_called_a_condition():
    # r0 = -r7 where r7 came from a map, not from "&= 1": the generic cause, not the compiler's condition
    log = ("0: R1=ctx() R10=fp0\n14: (61) r7 = *(u32 *)(r6 +0)         ; R7_w=scalar()\n"
           "15: (87) r7 = -r7                     ; R7_w=scalar()\n16: (bf) r0 = r7\n17: (95) exit\n"
           "At program exit the register R0 has unknown scalar value should have been in [-4095, 0]\n")
    e = range_refusal("lsm__file_open", "x", log)
    assert e is not None and not e.negation
    assert e.negation is False and range_refusal("lsm__file_open", "x", log.replace("(61) r7 = *(u32 *)(r6 +0)",
                                                                                  "(57) r7 &= 1")).negation


def test_other_refusals_are_not_range_refusals():
    assert range_refusal("lsm__file_open", "x", "bpf: Failed to load program: Permission denied\n") is None
    assert range_refusal("lsm__file_open", "x", "R1 invalid mem access 'scalar'\nprocessed 12 insns\n") is None


def test_the_negation_probe_holds_a_negation_of_a_condition():
    """lsm.return_check()'s "negation" program must compile to what clang makes of a condition's verdict
    (r0 &= 1, then r0 = -r0): else it would load on a kernel that refuses such answers, and say it does not.
    Compiled only (no kernel needed)."""
    pytest.importorskip("bcc")
    from labkit.hooks.lsm import _RANGE_PROBE_C
    from labkit.programs.compile import compile_c

    c = compile_c(_RANGE_PROBE_C["negation"], "test", [], need="tracing")
    try:
        raw = c.bpf.dump_func(b"lsm__file_open")
    finally:
        c.bpf.cleanup()
    ops = [(raw[i], raw[i + 4:i + 8]) for i in range(0, len(raw), 8)]
    at = [i for i, (op, _imm) in enumerate(ops) if op == 0x87]
    assert at, [hex(op) for op, _ in ops]
    assert ops[at[0] - 1] == (0x57, (1).to_bytes(4, "little")), [hex(op) for op, _ in ops]
