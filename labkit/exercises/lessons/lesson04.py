"""Lesson 04, Verifier mistakes: a bounds check added (q1, test-run on frames in the
kernel with BPF_PROG_TEST_RUN, no network) and a loop given a bound (q2)."""

from __future__ import annotations

import os
import re

from labkit._errors import LabkitError
from labkit.exercises.framework import (
    Check,
    Checklist,
    Exercise,
    Incorrect,
    Lesson,
    attach_answer,
    int_key_column,
    load_answer,
    need_map,
    snippet_text,
    value_column,
)
from labkit.lab import Lab
from labkit.net import xdp as _xdp
from labkit.programs.core import prog_test_run
from labkit.views.tables import map_dataframe

__all__ = ["build"]

_ACTIONS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
_C_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _normalized(text: str) -> str:
    """C text without comments, on one line."""
    return re.sub(r"\s+", " ", _C_COMMENT.sub("", text))


def _test_run(prog_fd: int, data: bytes) -> int:
    """Run a loaded XDP program once on ``data`` in the kernel (BPF_PROG_TEST_RUN,
    no interface involved); returns its verdict (1 drop, 2 pass, ...)."""
    if _xdp.libbpf() is None:
        raise LabkitError("libbpf.so.1 is needed to test-run a program (apt-get install libbpf1)")
    try:
        return prog_test_run(prog_fd, data)
    except OSError as e:
        raise LabkitError(f"BPF_PROG_TEST_RUN failed: {e.strerror}") from None


def _frame(ethertype: int, payload: bytes = b"") -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + ethertype.to_bytes(2, "big") + payload


_IPV4_ICMP = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 8, 0, 0, 0, 0, 0, 0, 0])
_ARP = bytes([0, 1, 8, 0, 6, 4, 0, 1]) + b"\x04" * 6 + bytes([198, 18, 0, 1]) + b"\0" * 6 + bytes([198, 18, 0, 2])
_IPV6 = bytes([0x60, 0, 0, 0, 0, 0, 59, 64]) + bytes([0xfd] + [0] * 15) + bytes([0xfd] + [0] * 14 + [1])
_SLOTS = {0: "counts[0] (IPv4)", 1: "counts[1] (ARP)", 2: "counts[2] (other)"}

#: (what, frame, the counts slot it belongs in). BPF_PROG_TEST_RUN refuses frames
#: shorter than an Ethernet header (14 bytes; EINVAL on 6.1 and 6.18), so the
#: shortest frames here are exactly 14 bytes: a bare header.
_FRAMES = [
    ("an IPv4 (ping) frame of 42 bytes", _frame(0x0800, _IPV4_ICMP), 0),
    ("a 1514-byte IPv4 frame", _frame(0x0800, _IPV4_ICMP + b"\0" * 1472), 0),
    ("an ARP request of 42 bytes", _frame(0x0806, _ARP), 1),
    ("an ARP request padded to 60 bytes", _frame(0x0806, _ARP + b"\0" * 18), 1),
    ("an IPv6 frame", _frame(0x86DD, _IPV6), 2),
    ("a frame of EtherType 0x0008 (IPv4's bytes swapped)", _frame(0x0008, _IPV4_ICMP), 2),
    ("a frame of EtherType 0x0608 (ARP's bytes swapped)", _frame(0x0608, _ARP), 2),
    ("a 14-byte frame (just the Ethernet header), EtherType IPv4", _frame(0x0800), 0),
    ("a 14-byte frame (just the Ethernet header), EtherType ARP", _frame(0x0806), 1),
    ("a 15-byte frame, EtherType IPv6", _frame(0x86DD, b"\x60"), 2),
]
_NOT_PASS = re.compile(r"\breturn\b[^;]*\bXDP_(DROP|ABORTED|TX|REDIRECT)\b")
# `if (!n) return XDP_ABORTED;` after a map lookup: a path no frame takes
_NULL_CHECK = re.compile(r"\bif\s*\(\s*(!\s*\w+|\w+\s*==\s*(NULL|0)|(NULL|0)\s*==\s*\w+)\s*\)\s*\{?\s*$")


def _returns_not_pass(source: str):
    """The first ``return XDP_DROP`` (or another action than XDP_PASS) in the
    C text, other than one after a failed map lookup: frames too short for an
    Ethernet header cannot be test-run (the kernel refuses them), so that path
    is judged from the source."""
    for m in _NOT_PASS.finditer(source):
        if not _NULL_CHECK.search(source[max(0, m.start() - 80):m.start()]):
            return m
    return None


def _counts(prog) -> dict[int, int]:
    df = map_dataframe(prog, "counts")
    if df.empty:
        return {}
    value = value_column(df)
    return {int(k): int(v) for k, v in zip(df[int_key_column(df, value)], df[value])}


def _observe_bounds_fixed(answer) -> dict:
    """Load the answer and test-run it on each of _FRAMES: its verdict for each (``verdicts``), what each
    frame added to the map (``slots``: [key, added] pairs per frame), and its C text (comments out, on one
    line), which says what frames too short to test-run would get."""
    import bcc  # lazy: bcc is heavy (LLVM); only a checker that loads a program needs it

    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", need="xdp")
        need_map(prog, "counts")
        source = _normalized(prog.source)
        fn = prog.load_function(prog.function_name(), bcc.BPF.XDP)       # VerifierError if still refused
        verdicts, slots = [], []
        before = _counts(prog)
        for what, data, _slot in _FRAMES:
            verdicts.append(_test_run(fn.fd, data))
            after = _counts(prog)
            slots.append({k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)
                          if after.get(k, 0) != before.get(k, 0)})
            before = after
    return {"source": source, "verdicts": verdicts, "slots": [sorted(d.items()) for d in slots]}


def _diagnose_bounds_fixed(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_bounds_fixed` saw."""
    source, verdicts = obs["source"], obs["verdicts"]
    slots = [dict((k, n) for k, n in pairs) for pairs in obs["slots"]]
    c = Checklist()
    not_passed = [(what, rv) for (what, _d, _s), rv in zip(_FRAMES, verdicts) if rv != 2]
    drop = _returns_not_pass(source)
    if not_passed:
        why = (f"it returned {_ACTIONS.get(not_passed[0][1], not_passed[0][1])} for {not_passed[0][0]}: the program "
               "must pass every frame (XDP_PASS), it only counts")
    elif drop:
        why = (f"it returns XDP_{drop.group(1)} on some path ({drop.group(0).strip()}): the program must pass every "
               "frame, a frame too short for an Ethernet header too (return XDP_PASS there)")
    else:
        why = ""
    c.part("passes every frame", not not_passed and not drop, why)

    def judged(i: int) -> str:
        what, data, slot = _FRAMES[i]
        got = slots[i]
        if got == {slot: 1}:
            return ""
        if not got:
            return f"{what} was not counted"
        if sum(got.values()) > 1:
            return f"{what} was counted {sum(got.values())} times ({got})"
        k = next(iter(got))
        return f"{what} was counted in {_SLOTS.get(k, f'counts[{k}]')}, not {_SLOTS[slot]}"

    swapped = any(slots[i].get(2) and s != 2 or (slots[i].get(0) or slots[i].get(1)) and "swapped" in w
                  for i, (w, d, s) in enumerate(_FRAMES) if len(d) > 15)
    hinted = False
    for slot, kind in ((0, "IPv4"), (1, "ARP"), (2, "other")):
        bad = [judged(i) for i, (_w, data, s) in enumerate(_FRAMES) if s == slot and len(data) > 15 and judged(i)]
        why = "; ".join(bad)
        if bad and swapped and not hinted:
            hinted = True
            why += (" (compare the EtherType in host byte order: bpf_ntohs(eth->h_proto) == ETH_P_IP, or "
                    "eth->h_proto == bpf_htons(ETH_P_IP))")
        c.part(f"counts {kind} frames in counts[{slot}]", not bad, why)

    short = [judged(i) for i, (_w, data, _s) in enumerate(_FRAMES) if len(data) <= 15 and judged(i)]
    # the 14/15-byte frames fail alone (their longer kin are counted right): the check refuses them
    refused = [i for i, (_w, data, s) in enumerate(_FRAMES) if len(data) <= 15 and not slots[i]
               and not any(judged(j) for j, (_x, d, t) in enumerate(_FRAMES) if t == s and len(d) > 15)]
    c.part("counts a frame of exactly 14 bytes (a whole Ethernet header)", not short,
           "; ".join(short) + (": a 14-byte frame holds the whole Ethernet header, so the check must let it "
                               "through: `(void *)(eth + 1) > data_end` (not >=, and not a size larger than "
                               "sizeof(*eth))" if refused else ""))
    totals = [sum(1 for _w, _d, s in _FRAMES if s == k) for k in range(3)]
    return c.done(f"yes: the verifier accepts it, and run on {len(_FRAMES)} test frames (BPF_PROG_TEST_RUN, no "
                  f"network; 14 to 1514 bytes) it passed them all and counted {totals} IPv4/ARP/other frames",
                  counts=totals)


# -------------------------------------------------------------------- q2
#: (what, the bytes written, newlines the task counts in them). Each write has
#: its own file descriptor, and each is a slice of a buffer full of newlines:
#: whatever follows the written bytes in memory is '\n', so reading past
#: `count` shows.
_WRITES = [
    ("a 5-byte write", b"a\nb\nc", 2),
    ("an empty write", b"", 0),
    ("a 1-byte write", b"\n", 1),
    ("a 63-byte write", b"c" * 62 + b"\n", 1),
    ("a write of exactly 64 bytes (newlines at bytes 0 and 63)", b"\n" + b"x" * 62 + b"\n", 2),
    ("a 65-byte write (newlines at bytes 63 and 64)", b"x" * 63 + b"\n\n", 1),
    ("a 200-byte write (newlines at bytes 62-65 and 166-199)", b"y" * 62 + b"\n" * 4 + b"z" * 100 + b"\n" * 34, 2),
]
_TWICE = [b"\n\nx", b"x\n"]          # two writes to one descriptor: 2 + 1 newlines
_SHORT = {0, 1, 2, 3}               # _WRITES that end before 64 bytes
_PAST_BUF = 256


def _write(fd: int, data: bytes) -> None:
    buf = bytearray(b"\n" * _PAST_BUF)
    buf[:len(data)] = data
    os.write(fd, memoryview(buf)[:len(data)])      # write(2) gets buf itself: newlines follow the slice


def _observe_loop_fixed(answer) -> dict:
    """Run the answer while this process writes _WRITES (one file descriptor each) and _TWICE (to one
    more): the file descriptors, the map 'newlines' (``got``: [key, count] pairs) and the hooks it ran on."""
    me = os.getpid()
    fds = [os.open(os.devnull, os.O_WRONLY) for _ in range(len(_WRITES) + 1)]   # ours only, while the check runs
    try:
        with Lab() as lab:
            prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": me})
            need_map(prog, "newlines")
            hooks = attach_answer(lab, prog, "syscalls:sys_enter_write", "exercise 04 q2")
            for fd, (_what, data, _n) in zip(fds, _WRITES):
                _write(fd, data)
            for data in _TWICE:
                _write(fds[-1], data)
            df = map_dataframe(prog, "newlines")
    finally:
        for fd in fds:
            os.close(fd)
    got = []
    if not df.empty:
        value = value_column(df)
        got = [[int(k), int(v)] for k, v in zip(df[int_key_column(df, value)], df[value])]
    return {"me": me, "fds": fds, "hooks": hooks, "got": got}


def _diagnose_loop_fixed(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_loop_fixed` saw."""
    me, fds, hooks = obs["me"], obs["fds"], obs["hooks"]
    if not obs["got"]:
        where = f" (it attached itself to {', '.join(hooks)})" if hooks and not any("sys_enter_write" in h
                                                                                  for h in hooks) else ""
        raise Incorrect(f"the map 'newlines' stayed empty though this process wrote newlines to "
                        f"{len(fds)} file descriptors{where}: the program must run on syscalls:sys_enter_write "
                        "and keep this process's writes")
    got = dict((k, v) for k, v in obs["got"])
    c = Checklist()
    ours = [fd for fd in fds if fd in got]
    if not ours:
        why = (f"no entry for the file descriptors written to ({', '.join(map(str, fds))})"
               + (f"; there is one under the process id {me}: key the map by args->fd" if me in got
                  else ": is the key the file descriptor, args->fd?"))
    else:
        why = ""
    c.part("per file descriptor", bool(ours), why)
    per_write = [(what, data, n, got.get(fd, 0)) for fd, (what, data, n) in zip(fds, _WRITES)]
    counts_bytes = bool(ours) and all(g == min(len(d), 64) for _w, d, _n, g in per_write)
    c.part("counts newlines, not bytes", not counts_bytes,
           "it counts bytes, not newlines (a 5-byte write gave 5): count only the bytes where c == '\\n'")
    short_bad = [(w, d, n, g) for i, (w, d, n, g) in enumerate(per_write) if i in _SHORT and g != n]
    long_bad = [(w, d, n, g) for i, (w, d, n, g) in enumerate(per_write) if i not in _SHORT and g != n]

    def say(bad) -> str:
        return "; ".join(f"{w} with {n} newline{'s' if n != 1 else ''} was counted as {g}" for w, _d, n, g in bad)

    if short_bad and ours:
        why = say(short_bad)
        if all(g > n for _w, _d, n, g in short_bad):
            why += (": the bytes after the write's count are not part of it (here they are newlines in the "
                    "caller's memory): stop at `i < args->count` as well as at 64")
    else:
        why = "" if ours else "not measured (no entry per file descriptor)"
    c.part("stops at the write's count", ours and not short_bad, why)
    if long_bad and ours:
        why = say(long_bad)
        if all(g > n for _w, _d, n, g in long_bad):
            why += ": only the first 64 bytes count (bytes 0 to 63: i < 64)"
        elif all(g < n for _w, _d, n, g in long_bad):
            why += ": the first 64 bytes are bytes 0 to 63, the last one included (i < 64)"
    else:
        why = "" if ours else "not measured (no entry per file descriptor)"
    c.part("looks at the first 64 bytes", ours and not long_bad, why)
    twice = got.get(fds[-1], 0)
    c.part("adds up every write to a descriptor", twice == 3,
           f"two writes with 2 and 1 newlines to one file descriptor left {twice}"
           + (": add each write's count to the total (__sync_fetch_and_add(total, n), or newlines.increment(fd, n)),"
              " do not replace it" if twice in (1, 2) else ""))
    return c.done(f"yes: the verifier accepts the loop, and over {len(_WRITES) + len(_TWICE)} writes to "
                  f"{len(fds)} file descriptors (0 to 200 bytes, each followed by newlines in memory) it counted "
                  "exactly the newlines of each write's first 64 bytes", counted={str(fd): got.get(fd, 0) for fd in fds})


def build() -> Lesson:
    """The exercises of lesson 04."""
    return Lesson("04", "Verifier mistakes", [
        Exercise(
            "q1",
            "Fix verifier_missing_bounds.c: it must load, pass every frame (XDP_PASS, a frame too short for an "
            "Ethernet header too), and still count every frame that holds a whole Ethernet header (14 bytes) by "
            "its EtherType: IPv4 in counts[0], ARP in counts[1], anything else in counts[2].",
            Check(_observe_bounds_fixed, _diagnose_bounds_fixed),
            "Before reading eth->h_proto, prove that the whole Ethernet header is inside the packet: "
            "compare (void *)(eth + 1) with data_end, and return XDP_PASS when it is not.",
            lambda: snippet_text("solution_04_bounds_checked"),
            lambda: "solution_04_bounds_checked",
            "c",
        ),
        Exercise(
            "q2",
            "Fix verifier_unbounded_loop.c: count the newlines in the first 64 bytes of each write() (and never "
            "past the bytes written: a write may be shorter), per file descriptor (the key: the write's fd), "
            "added up over the writes, in the map newlines. Only this process: labkit passes "
            "-DLK_FILTER_PID=<pid>.",
            Check(_observe_loop_fixed, _diagnose_loop_fixed),
            "Give the loop a bound the verifier can see: a constant. Keep the write's count as a bound too, "
            "or you read past what was written. (If you unroll the loop with #pragma unroll, read the count "
            "into a local first, u64 count = args->count;: an unrolled loop that reads args->count in its body "
            "is refused with \"dereference of modified ctx ptr\".)",
            lambda: snippet_text("solution_04_bounded_loop"),
            lambda: "solution_04_bounded_loop",
            "c",
        ),
    ])
