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


DIV64_K, MOD64_K, DIV32_K, MOD32_X = 0x37, 0x97, 0x34, 0x9c


def test_division_and_modulo_are_followed_with_the_kernel_s_rules():
    # 26 / 2 = 13 (a positive value computed by a division is still positive)
    assert constant_returns(prog(insn(MOV64_K, imm=26), insn(DIV64_K, imm=2), insn(EXIT))) == {13}
    assert constant_returns(prog(insn(MOV64_K, imm=27), insn(MOD64_K, imm=7), insn(EXIT))) == {6}
    # unsigned: -26 / 2 is a huge positive 64-bit number; its low 32 bits as an int
    assert constant_returns(prog(insn(MOV64_K, imm=-26), insn(DIV64_K, imm=2), insn(EXIT))) == {-13}
    assert constant_returns(prog(insn(MOV32_K, imm=-26), insn(DIV32_K, imm=2), insn(EXIT))) == {0x7FFFFFF3}
    # signed (off 1, sdiv): -26 / 2 = -13, truncated towards zero like C: -7 / 2 = -3, -7 % 2 = -1
    assert constant_returns(prog(insn(MOV64_K, imm=-26), insn(DIV64_K, off=1, imm=2), insn(EXIT))) == {-13}
    assert constant_returns(prog(insn(MOV64_K, imm=-7), insn(DIV64_K, off=1, imm=2), insn(EXIT))) == {-3}
    assert constant_returns(prog(insn(MOV64_K, imm=-7), insn(MOD64_K, off=1, imm=2), insn(EXIT))) == {-1}
    # by zero: a division gives 0, a modulo leaves the value (r1 = 0 as the divisor register)
    assert constant_returns(prog(insn(MOV64_K, imm=9), insn(DIV64_K, imm=0), insn(EXIT))) == {0}
    assert constant_returns(prog(insn(MOV64_K, dst=1, imm=0), insn(MOV32_K, imm=9), insn(MOD32_X, src=1),
                                 insn(EXIT))) == {9}


def test_a_sign_extending_move_is_followed():
    # movsx r0 = (s8) r1, r1 = 0xF3: -13; (s16) of 0x000D: 13
    assert constant_returns(prog(insn(MOV64_K, dst=1, imm=0xF3), insn(MOV64_X, src=1, off=8), insn(EXIT))) == {-13}
    assert constant_returns(prog(insn(MOV64_K, dst=1, imm=13), insn(MOV64_X, src=1, off=16), insn(EXIT))) == {13}


def test_a_byte_swap_is_not_known():
    assert constant_returns(prog(insn(MOV64_K, imm=13), insn(0xd4, imm=16), insn(EXIT))) == set()
