"""labkit.programs.returns on hand-made eBPF instructions (pure): the constants r0 holds at each exit of a
function's own code, as the hook's int sees them."""

from __future__ import annotations

import struct

from labkit.programs.returns import constant_returns


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, dst | src << 4, off, imm)


MOV64_K, MOV32_K, MOV64_X, ADD64_K, NEG64, LDDW, JEQ_K, JA, CALL, EXIT = (
    0xb7, 0xb4, 0xbf, 0x07, 0x87, 0x18, 0x15, 0x05, 0x85, 0x95)


def prog(*ins: bytes) -> bytes:
    return b"".join(ins)


def test_a_constant_and_its_32_bit_form():
    assert constant_returns(prog(insn(MOV64_K, imm=1), insn(EXIT))) == {1}
    assert constant_returns(prog(insn(MOV32_K, imm=-13), insn(EXIT))) == {-13}
    assert constant_returns(prog(insn(MOV64_K, imm=-1), insn(EXIT))) == {-1}


def test_both_branches_are_followed():
    code = prog(insn(MOV64_K, imm=0), insn(JEQ_K, dst=1, off=1, imm=7), insn(EXIT),
                insn(MOV64_K, imm=13), insn(EXIT))
    assert constant_returns(code) == {0, 13}


def test_a_value_moved_and_computed_is_followed():
    code = prog(insn(MOV64_K, dst=6, imm=13), insn(NEG64, dst=6), insn(MOV64_X, dst=0, src=6), insn(EXIT))
    assert constant_returns(code) == {-13}
    code = prog(insn(MOV64_K, dst=0, imm=1), insn(ADD64_K, dst=0, imm=-2), insn(EXIT))
    assert constant_returns(code) == {-1}


def test_a_64_bit_load_is_read_as_the_int_the_hook_sees():
    code = prog(insn(LDDW, imm=-13), insn(0, imm=-1), insn(EXIT))
    assert constant_returns(code) == {-13}


def test_what_a_helper_returns_is_not_known():
    assert constant_returns(prog(insn(MOV64_K, imm=5), insn(CALL, imm=14), insn(EXIT))) == set()


def test_a_subprogram_s_exit_is_not_the_function_s():
    # call +2 (a bpf-to-bpf call: src 1) to a subprogram that returns 1; the function returns 0
    code = prog(insn(CALL, src=1, imm=2), insn(MOV64_K, imm=0), insn(EXIT), insn(MOV64_K, imm=1), insn(EXIT))
    assert constant_returns(code) == {0}


def test_a_loop_ends_and_a_growing_value_becomes_unknown():
    # r0 = 0; loop: r0 += 1; if r1 == 0 goto loop (back); exit: r0 grows past the cap, so it is not known
    code = prog(insn(MOV64_K, imm=0), insn(ADD64_K, imm=1), insn(JEQ_K, dst=1, off=-2, imm=0), insn(EXIT))
    assert constant_returns(code) == set()
    # a loop that leaves r0 alone keeps it known
    code = prog(insn(MOV64_K, imm=-1), insn(ADD64_K, dst=2, imm=1), insn(JEQ_K, dst=1, off=-2, imm=0), insn(EXIT))
    assert constant_returns(code) == {-1}
    assert constant_returns(prog(insn(MOV64_K, imm=-1), insn(JA, off=-2), insn(EXIT))) == set()
