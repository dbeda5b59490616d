"""Lesson 04's diagnoses at their edges, on observations made by hand: q1's
14-byte frames refused alone, a drop on a path no test frame takes, swapped
EtherTypes; q2's writes at 63, 64 and 65 bytes, and totals replaced."""

from __future__ import annotations

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT
from labkit.exercises.lessons.lesson04 import _FRAMES, _WRITES

RIGHT_SLOTS = [[[slot, 1]] for _w, _d, slot in _FRAMES]
PASSING = "int f(struct xdp_md *ctx) { return XDP_PASS; }"


def q1(slots=RIGHT_SLOTS, verdicts=None, source=PASSING):
    return lesson("04").q1.diagnose({"source": source, "verdicts": verdicts or [2] * len(_FRAMES), "slots": slots})


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_q1_every_frame_counted_in_its_slot_is_correct():
    res = q1()
    assert res.status == CORRECT and res.details["counts"] == [3, 3, 4]


def test_q1_the_14_byte_frames_refused_alone_is_the_bounds_check():
    slots = [[] if len(d) == 14 else [[s, 1]] for _w, d, s in _FRAMES]
    why = failed(q1(slots))
    assert list(why) == ["counts a frame of exactly 14 bytes (a whole Ethernet header)"]
    assert why["counts a frame of exactly 14 bytes (a whole Ethernet header)"].endswith(
        "so the check must let it through: `(void *)(eth + 1) > data_end` (not >=, and not a size larger than "
        "sizeof(*eth))")


def test_q1_a_drop_on_a_path_no_frame_takes_is_read_from_the_source():
    why = failed(q1(source="if (data + 14 > data_end) return XDP_DROP; return XDP_PASS;"))
    assert why == {"passes every frame": "it returns XDP_DROP on some path (return XDP_DROP): the program must pass "
                                         "every frame, a frame too short for an Ethernet header too (return XDP_PASS "
                                         "there)"}
    assert q1(source="if (!n) return XDP_ABORTED; return XDP_PASS;").status == CORRECT   # a failed lookup


def test_q1_a_frame_dropped_names_the_action():
    why = failed(q1(verdicts=[1] + [2] * (len(_FRAMES) - 1)))["passes every frame"]
    assert why.startswith("it returned XDP_DROP for an IPv4 (ping) frame of 42 bytes")


def test_q1_swapped_ethertypes_get_the_byte_order_hint_once():
    swapped = {i for i, (w, _d, _s) in enumerate(_FRAMES) if "swapped" in w}
    ipv4_arp = {i for i, (_w, d, s) in enumerate(_FRAMES) if s in (0, 1) and len(d) > 15}
    slots = [[[0 if i in swapped else 2, 1]] if i in swapped | ipv4_arp else [[s, 1]]
             for i, (_w, _d, s) in enumerate(_FRAMES)]
    res = q1(slots)
    hinted = [m for m in failed(res).values() if "bpf_ntohs(eth->h_proto) == ETH_P_IP" in m]
    assert len(hinted) == 1 and len(failed(res)) == 3


FDS = list(range(10, 10 + len(_WRITES) + 1))


def q2(counts, *, twice=3, me=4242):
    got = [[fd, n] for fd, n in zip(FDS, counts)] + [[FDS[-1], twice]]
    return lesson("04").q2.diagnose({"me": me, "fds": FDS, "hooks": ["tracepoint syscalls:sys_enter_write"],
                                     "got": got})


RIGHT = [n for _w, _d, n in _WRITES]


def test_q2_the_newlines_of_each_write_are_correct():
    assert q2(RIGHT).status == CORRECT


def test_q2_one_more_newline_past_64_bytes_is_the_bound():
    counts = list(RIGHT)
    counts[5] += 1                 # the 65-byte write's newline at byte 64 counted
    why = failed(q2(counts))
    assert list(why) == ["looks at the first 64 bytes"]
    assert why["looks at the first 64 bytes"].endswith("only the first 64 bytes count (bytes 0 to 63: i < 64)")
    counts = list(RIGHT)
    counts[4] -= 1                 # the 64-byte write's newline at byte 63 missed
    assert failed(q2(counts))["looks at the first 64 bytes"].endswith(
        "the first 64 bytes are bytes 0 to 63, the last one included (i < 64)")


def test_q2_a_total_replaced_by_the_last_write():
    why = failed(q2(RIGHT, twice=1))
    assert list(why) == ["adds up every write to a descriptor"] and "do not replace it" in why[
        "adds up every write to a descriptor"]


def test_q2_keyed_by_the_process_and_an_empty_map():
    res = lesson("04").q2.diagnose({"me": 4242, "fds": FDS, "hooks": [], "got": [[4242, 11]]})
    assert failed(res)["per file descriptor"].endswith("there is one under the process id 4242: key the map by "
                                                       "args->fd")
    res = lesson("04").q2.diagnose({"me": 4242, "fds": FDS, "hooks": ["tracepoint syscalls:sys_enter_read"],
                                    "got": []})
    assert res.status == INCORRECT and res.parts == [] and "(it attached itself to tracepoint " \
        "syscalls:sys_enter_read)" in res.message
