"""Lesson 04, Verifier mistakes: a bounds check added (q1, test-run on frames in the
kernel with BPF_PROG_TEST_RUN, no network) and a loop given a bound (q2)."""

from __future__ import annotations

import ctypes
import os

from labkit._errors import LabkitError
from labkit.exercises.framework import (
    Exercise,
    Incorrect,
    Lesson,
    int_key_column,
    load_answer,
    need_map,
    snippet_text,
    value_column,
)
from labkit.lab import Lab
from labkit.net import xdp as _xdp
from labkit.views.tables import map_dataframe

__all__ = ["build"]


class _TestRunOpts(ctypes.Structure):
    # struct bpf_test_run_opts (libbpf 1.x); libbpf reads fields up to sz
    _fields_ = [("sz", ctypes.c_size_t), ("data_in", ctypes.c_void_p), ("data_out", ctypes.c_void_p),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32), ("ctx_in", ctypes.c_void_p),
                ("ctx_out", ctypes.c_void_p), ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("retval", ctypes.c_uint32), ("repeat", ctypes.c_int), ("duration", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32), ("batch_size", ctypes.c_uint32)]


def _test_run(prog_fd: int, data: bytes) -> int:
    """Run a loaded XDP program once on ``data`` in the kernel (BPF_PROG_TEST_RUN,
    no interface involved); returns its verdict (1 drop, 2 pass, ...)."""
    lib = _xdp.libbpf()
    if lib is None:
        raise LabkitError("libbpf.so.1 is needed to test-run a program (apt-get install libbpf1)")
    fn = lib.bpf_prog_test_run_opts
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
    fn.restype = ctypes.c_int
    buf = ctypes.create_string_buffer(data, len(data))
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.cast(buf, ctypes.c_void_p),
                        data_size_in=len(data), repeat=1)
    rc = fn(prog_fd, ctypes.byref(opts))
    if rc != 0:
        err = -rc if rc < -1 else ctypes.get_errno()
        raise LabkitError(f"BPF_PROG_TEST_RUN failed: {os.strerror(err)}")
    return int(opts.retval)


def _frame(ethertype: int, payload: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + ethertype.to_bytes(2, "big") + payload


_IPV4_ICMP = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 8, 0, 0, 0, 0, 0, 0, 0])


def _check_bounds_fixed(answer) -> tuple[str, dict]:
    import bcc  # lazy: bcc is heavy (LLVM); only a checker that loads a program needs it

    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", need="xdp")
        need_map(prog, "counts")
        fn = prog.load(prog.function_name(), bcc.BPF.XDP)       # VerifierError if still refused
        frames = [("IPv4", _frame(0x0800, _IPV4_ICMP)), ("IPv4", _frame(0x0800, _IPV4_ICMP)),
                  ("ARP", _frame(0x0806, b"\0" * 28)), ("IPv6", _frame(0x86DD, b"\0" * 40)),
                  ("a bare Ethernet header", _frame(0x0800, b""))]
        verdicts = [(what, _test_run(fn.fd, data)) for what, data in frames]
        counts = [int(prog["counts"][i].value) for i in range(3)]
    wrong = [(what, rv) for what, rv in verdicts if rv != 2]
    if wrong:
        raise Incorrect(f"it returned {wrong[0][1]} (not XDP_PASS, 2) for {wrong[0][0]}: the program must "
                        "pass every frame, it only counts", verdicts=verdicts)
    if counts != [3, 1, 1]:
        raise Incorrect(f"the counts are {counts} for 3 IPv4, 1 ARP and 1 IPv6 frame (expected [3, 1, 1]): "
                        "keep counting after the check", counts=counts)
    return ("yes: the verifier accepts it, and run on 5 test frames (BPF_PROG_TEST_RUN, no network) it passed "
            f"them all and counted {counts}"), {"counts": counts}


def _check_loop_fixed(answer) -> tuple[str, dict]:
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": os.getpid()})
        need_map(prog, "newlines")
        lab.attach_tracepoint(prog, "syscalls:sys_enter_write", name="exercise 04 q2")
        fd = os.open(os.devnull, os.O_WRONLY)
        try:
            os.write(fd, b"one\ntwo\nthree\n")                          # 3 newlines
            os.write(fd, b"\n" * 10 + b"x" * 100 + b"\n" * 90)            # 10 in the first 64 bytes
            df = map_dataframe(prog, "newlines")
        finally:
            os.close(fd)
    value = value_column(df) if not df.empty else "value"
    got = {int(k): int(v) for k, v in zip(df[int_key_column(df, value)], df[value])} if not df.empty else {}
    n = got.get(fd)
    if n == 13:
        return ("yes: the verifier accepts the loop, and it counted 3 + 10 newlines in two writes (only the "
                "first 64 bytes of each)"), {"counted": n}
    if n == 103:
        raise Incorrect("counted 103: every newline of the 200-byte write. Look at the first 64 bytes only "
                        "(a loop bound of 64)", counted=n)
    raise Incorrect(f"for two writes with 3 and (in their first 64 bytes) 10 newlines the map says {n}",
                    counted=n, got=got)


def build() -> Lesson:
    """The exercises of lesson 04."""
    return Lesson("04", "Verifier mistakes", [
        Exercise(
            "q1",
            "Fix verifier_missing_bounds.c: it must load, pass every frame, and still count IPv4, ARP and "
            "other frames in counts[0], [1], [2].",
            _check_bounds_fixed,
            "Before reading eth->h_proto, prove that the whole Ethernet header is inside the packet: "
            "compare (void *)(eth + 1) with data_end, and return XDP_PASS when it is not.",
            lambda: snippet_text("solution_04_bounds_checked"),
            lambda: "solution_04_bounds_checked",
            "c",
        ),
        Exercise(
            "q2",
            "Fix verifier_unbounded_loop.c: count the newlines in the first 64 bytes of each write(), per "
            "file descriptor, in the map newlines.",
            _check_loop_fixed,
            "Give the loop a bound the verifier can see: a constant. Keep `i < args->count` too, or you "
            "read past what was written.",
            lambda: snippet_text("solution_04_bounded_loop"),
            lambda: "solution_04_bounded_loop",
            "c",
        ),
    ])

