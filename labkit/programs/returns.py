"""What a BPF function can return, read from its instructions before the kernel sees them.

Pure: bytes in (BCC's ``dump_func``: the function's eBPF instructions as clang made them), constants out.
Used by the LSM hook's guard (labkit.hooks.lsm): an LSM program returns 0 or a negative errno, and a
positive value (``return EPERM;`` for ``return -EPERM;``) is no verdict the kernel knows: where the verifier
does not refuse it, a hook's caller can take it for a pointer.

The analysis follows the function's own jumps from its first instruction (never into a called subprogram,
whose exits return to the caller) and keeps, for each register, the set of constants it may hold (None:
not known, e.g. a helper's result or a value read from memory). At each ``exit`` it notes r0's constants as
the int the hook sees (its low 32 bits, signed). Only what is certain is said: a value read from a map is
not known, so it is never reported.
"""

from __future__ import annotations

import struct

__all__ = ["constant_returns"]

_CAP = 16                 # more constants than this in one register: not known
_MASK64 = (1 << 64) - 1

# instruction classes, ALU operations, jump operations (linux/bpf_common.h, linux/bpf.h)
_LD, _LDX, _ST, _STX, _ALU, _JMP, _JMP32, _ALU64 = range(8)
_ADD, _SUB, _MUL, _DIV, _OR, _AND, _LSH, _RSH, _NEG, _MOD, _XOR, _MOV, _ARSH = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0)
_OPS = (_ADD, _SUB, _MUL, _DIV, _OR, _AND, _LSH, _RSH, _NEG, _MOD, _XOR, _MOV, _ARSH)
_JA, _CALL, _EXIT = 0x00, 0x80, 0x90
_ATOMIC, _FETCH, _CMPXCHG = 0xc0, 0x01, 0xf1


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def _alu(op: int, a: int, b: int, bits: int, signed: bool = False) -> int | None:
    """``a op b`` as the BPF machine does it on ``bits`` bits (``signed``: sdiv/smod, off 1); a division
    by zero gives 0 and a modulo by zero leaves ``a`` (the kernel's rules)."""
    mask = (1 << bits) - 1
    a &= mask
    b &= mask
    shift = b & (bits - 1)
    signed_a = _signed(a, bits)
    if op in (_DIV, _MOD):
        if b == 0:
            return 0 if op == _DIV else a
        if signed:
            x, y = signed_a, _signed(b, bits)
            q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)     # truncated towards zero, as C
            return (q if op == _DIV else x - q * y) & mask
        return (a // b if op == _DIV else a % b) & mask
    out = {_ADD: a + b, _SUB: a - b, _MUL: a * b, _OR: a | b, _AND: a & b, _XOR: a ^ b, _LSH: a << shift,
           _RSH: a >> shift, _ARSH: signed_a >> shift, _NEG: -a, _MOV: b}.get(op)
    return None if out is None else out & mask


def _apply(op: int, dst: frozenset | None, src: frozenset | None, bits: int, off: int = 0) -> frozenset | None:
    """The constants ``dst`` may hold after ``dst op= src``; ``off``: 1 makes DIV/MOD signed, 8/16/32 makes
    MOV sign-extend the source's low ``off`` bits (movsx)."""
    if op == _MOV and off:
        if src is None:
            return None
        return frozenset(_signed(b & ((1 << off) - 1), off) & ((1 << bits) - 1) for b in src)
    if op == _MOV:
        vals = src
    elif op == _NEG:
        vals = dst
    elif dst is None or src is None:
        return None
    else:
        vals = dst
    if vals is None:
        return None
    if op == _NEG:
        out = {_alu(op, a, 0, bits) for a in vals}
    elif op == _MOV:
        out = {b & ((1 << bits) - 1) for b in vals}
    else:
        out = {_alu(op, a, b, bits, signed=off == 1) for a in dst for b in src}  # type: ignore[union-attr]
    if None in out or len(out) > _CAP:
        return None
    return frozenset(out)


def _join(a: tuple, b: tuple) -> tuple:
    out = []
    for x, y in zip(a, b):
        if x is None or y is None:
            out.append(None)
        else:
            u = x | y
            out.append(u if len(u) <= _CAP else None)
    return tuple(out)


def constant_returns(insns: bytes) -> set[int]:
    """Every constant r0 may hold at an ``exit`` of the function ``insns`` (little-endian eBPF), as the
    hook's int sees it; values that are not known (a helper's result, memory) are left out."""
    n = len(insns) // 8
    code = [struct.unpack_from("<BBhi", insns, 8 * i) for i in range(n)]
    states: dict[int, tuple] = {0: (None,) * 11}      # at entry r1 is the context, r10 the stack: none constant
    work = [0]
    found: set[int] = set()
    while work:
        pc = work.pop()
        regs = list(states[pc])
        if pc >= n:
            continue
        op, r, off, imm = code[pc]
        dst, src = r & 0x0F, r >> 4
        cls = op & 0x07
        nexts = [pc + 1]
        if cls in (_ALU, _ALU64):
            bits = 64 if cls == _ALU64 else 32
            if dst < 11:
                operand = regs[src] if op & 0x08 else frozenset({imm & _MASK64})
                alu = op & 0xF0
                known_off = off == 0 or (alu in (_DIV, _MOD) and off == 1) or (alu == _MOV and off in (8, 16, 32))
                if alu in _OPS and known_off:
                    regs[dst] = _apply(alu, regs[dst], operand, bits, off)
                else:       # byte swaps (0xd0) and anything newer: not followed
                    regs[dst] = None
        elif cls == _LD:
            if op == 0x18:  # lddw: two slots
                lo, hi = imm & 0xFFFFFFFF, (code[pc + 1][3] & 0xFFFFFFFF) if pc + 1 < n else 0
                regs[dst] = frozenset({(hi << 32 | lo) & _MASK64}) if src == 0 else None
                nexts = [pc + 2]
            else:           # legacy packet loads write r0
                regs[0] = None
        elif cls == _LDX:
            regs[dst] = None
        elif cls == _STX and (op & 0xE0) == _ATOMIC:
            if imm == _CMPXCHG:
                regs[0] = None
            elif imm & _FETCH:
                regs[src] = None
        elif cls in (_JMP, _JMP32):
            jop = op & 0xF0
            if jop == _EXIT and cls == _JMP:
                if regs[0] is not None:
                    found |= {_s32(v) for v in regs[0]}
                nexts = []
            elif jop == _CALL and cls == _JMP:
                regs[0:6] = [None] * 6
            elif jop == _JA:
                nexts = [pc + 1 + (imm if cls == _JMP32 else off)]
            else:
                nexts = [pc + 1, pc + 1 + off]
        state = tuple(regs)
        for nx in nexts:
            if nx not in states:
                states[nx] = state
                work.append(nx)
            else:
                joined = _join(states[nx], state)
                if joined != states[nx]:
                    states[nx] = joined
                    work.append(nx)
    return found
