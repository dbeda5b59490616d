"""Lesson 14, A libbpf application: q1 is an XDP dispatcher that tail-calls a handler by IP protocol through
a prog array, run by the checker on packets it makes (BPF_PROG_TEST_RUN: no interface, no traffic); q2 is a
counter pinned in the BPF filesystem, which the checker loads twice, as two runs of a tool would, with its
read-only global set before load, and reads through the pin as a second program. Each checker observes on
the kernel, then a pure function decides from what was observed (``_diagnose_dispatch``, ``_diagnose_pinned``)."""

from __future__ import annotations

import os
import struct
import threading
import time

from labkit._errors import AttachError, CompileError, LabkitError
from labkit.exercises.framework import Check, Checklist, Exercise, Incorrect, Lesson, is_reference, plural, \
    snippet_text
from labkit.exercises.lessons.lesson06 import burst
from labkit.lab import Lab
from labkit.programs.core import PROG_ARRAY, CoreObject, resolve_core_source
from labkit.programs.pins import PinDir, pinned_map

__all__ = ["CALLS", "FIRST", "PACKETS", "PROTOCOLS", "READER", "STRAY", "build", "frame"]

XDP_ABORTED, XDP_DROP, XDP_PASS = 0, 1, 2
_ACTIONS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
#: q1: the slots the task names: the IP protocol numbers
PROTOCOLS = {"ICMP": 1, "UDP": 17}
#: q2: getppid() calls of the first run (one child), and of each of the second run's two racing children per round
FIRST, CALLS = 2_000, 50_000
#: q2: getppid() calls of a grandchild in the first run: answered with its parent's pid, not the checker's
#: (what a counter without the parent_pid test counts, however quiet the machine)
STRAY = 1_500
#: q2: rounds until the checker's own plain += lost PROVOKED adds (a race happened), MIN_ROUNDS at least,
#: never more than MAX_ROUNDS or (after MIN_ROUNDS) RACE_SECONDS
PROVOKED, MIN_ROUNDS, MAX_ROUNDS, RACE_SECONDS = 10, 2, 40, 45.0

_MAC = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"


def _ipv4(proto: int, *, options: bool = False) -> bytes:
    ihl = 6 if options else 5
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + 4 * (ihl - 5) + 20, 0, 0, 64, proto, 0,
                       bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
    return head + (b"\x01\x01\x01\x00" if options else b"") + b"\x00" * 20


def frame(kind: str) -> bytes:
    """The Ethernet frame of PACKETS[kind]."""
    if kind == "arp":      # the sender's MAC has 0x01 where an IPv4 header has its protocol (offset 14 + 9)
        return _MAC + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + b"\x02\x01\x00\x00\x00\x03" \
            + bytes([198, 18, 0, 1]) + b"\x00" * 6 + bytes([198, 18, 0, 2])
    if kind == "ipv6":     # byte 9 of the IPv6 header (in the source address) is 17, UDP's number
        src = bytes([0x20, 17, 0x0d, 0xb8]) + b"\x00" * 11 + b"\x01"   # 2011:db8::1
        return _MAC + b"\x86\xdd" + struct.pack("!IHBB", 0x60000000, 8, 58, 64) + src + src[:15] + b"\x02" \
            + b"\x80\x00\x00\x00\x00\x00\x00\x00"
    if kind == "runt":     # an Ethernet header that says IPv4 and 6 bytes of it: too short to have a protocol
        return _MAC + b"\x08\x00" + b"\x45\x00\x00\x14\x00\x00"
    proto, options = PACKETS[kind][0], kind.endswith("options")
    return _MAC + b"\x08\x00" + _ipv4(proto, options=options)


#: q1's packets: kind -> (IP protocol or None, what the task wants: the action, counted as UDP, in words)
PACKETS = {
    "icmp": (1, XDP_DROP, False, "an ICMP echo request"),
    "icmp options": (1, XDP_DROP, False, "ICMP in an IPv4 header with options (24 bytes)"),
    "udp": (17, XDP_PASS, True, "a UDP datagram"),
    "tcp": (6, XDP_PASS, False, "a TCP segment (slot 6 is empty)"),
    "gre": (47, XDP_PASS, False, "a GRE packet (slot 47 is empty)"),
    "arp": (None, XDP_PASS, False, "an ARP request (not IPv4)"),
    "ipv6": (None, XDP_PASS, False, "an IPv6 packet"),
    "runt": (None, XDP_PASS, False, "a frame too short for an IPv4 header"),
}


def _core_text(answer) -> str:
    """The CO-RE C of an answer: a ``%%bpf --core`` object, C text or a snippet name."""
    if isinstance(answer, CoreObject):
        if is_reference(answer.source):
            raise Incorrect("that is the reference solution, not your answer: write your own (ex.qN.hint() helps)")
        return answer.source
    if isinstance(answer, str):
        return resolve_core_source(answer)[1]
    raise Incorrect(f"the answer must be CO-RE C: the C text, a snippet name or a %%bpf --core object — not a "
                    f"{type(answer).__name__}")


def _load(lab: Lab, text: str, name: str, **kw) -> CoreObject:
    try:
        return lab.load_object(text, name=name, **kw)
    except CompileError as e:
        if "BPF_HASH(" in text or "BPF_PROG_ARRAY(" in text or "BPF_ARRAY(" in text:
            raise Incorrect("that is BCC C (BPF_HASH, BPF_PROG_ARRAY, ... exist only in BCC): CO-RE C includes "
                            "\"vmlinux.h\" and <bpf/bpf_helpers.h> and declares maps as struct { __uint(type, ...); "
                            f"... }} NAME SEC(\".maps\")\n{e.diagnostics}") from None
        raise


# ------------------------------------------------------------------ q1: a tail-call dispatcher
def _observe_dispatch(answer) -> dict:
    """Load the answer (attached nowhere), then test-run its dispatcher on each of PACKETS: what it returned
    and whether udp_seen grew; and which program sits in which slot of handlers."""
    text = _core_text(answer)
    with Lab() as lab:
        try:
            obj = _load(lab, text, "ex14_q1", attach=False)
        except AttachError as e:
            if "[" in str(e.target):     # a slot of the prog array was refused
                raise Incorrect(f"{e}\nA tail call keeps the program type: the dispatcher and every program in its "
                                "prog array are SEC(\"xdp\") programs") from None
            raise
        for m in ("handlers", "udp_seen"):
            if m not in obj.maps:
                raise Incorrect(f"the object has no map called {m!r} (its maps: {', '.join(obj.maps) or 'none'}): "
                                "the checker reads it")
        if obj.maps["handlers"].type != PROG_ARRAY:
            raise Incorrect("handlers is not a prog array: declare it __uint(type, BPF_MAP_TYPE_PROG_ARRAY), the "
                            "only map bpf_tail_call() jumps through")
        entry = [n for n in obj.programs if "dispatch" in n]
        if len(entry) != 1:
            raise Incorrect(f"the checker runs the program with 'dispatch' in its name, and the object has "
                            f"{len(entry)} ({', '.join(obj.programs)}): name the dispatcher lk_dispatch")
        dispatcher = obj.programs[entry[0]]
        if dispatcher.type != 6:
            raise Incorrect(f"{dispatcher.name} is SEC(\"{dispatcher.section}\"), not an XDP program: write it "
                            "under SEC(\"xdp\"), taking struct xdp_md *ctx")
        ids = {p.id: n for n, p in obj.programs.items()}
        slots = {str(i): ids.get(pid, f"program id {pid}") for i, pid in obj.maps["handlers"].slots().items()}

        def seen() -> int:
            df = obj.map_dataframe("udp_seen")
            return int(df["value"].sum()) if not df.empty else 0

        runs = {}
        for kind in PACKETS:
            before = seen()
            ret = dispatcher.test_run(frame(kind))
            runs[kind] = {"ret": ret, "counted": seen() - before}
    return {"dispatcher": dispatcher.name, "slots": slots, "runs": runs}


def _diagnose_dispatch(obs: dict) -> tuple[str, dict]:
    """The verdict on q1 from what each packet made the dispatcher return and count, and the prog array's slots."""
    slots = {int(k): v for k, v in obs["slots"].items()}
    runs = obs["runs"]

    def did(kind: str) -> str:
        r = runs[kind]
        return _ACTIONS.get(r["ret"], str(r["ret"])) + (" and counted it" if r["counted"] else "")

    def right(kind: str) -> bool:
        _proto, action, counted, _w = PACKETS[kind]
        return runs[kind]["ret"] == action and bool(runs[kind]["counted"]) == counted

    c = Checklist()
    filled = sorted(slots)
    if not filled:
        why = ("handlers is empty: a tail call to an empty slot does not jump (the dispatcher just goes on). Fill it "
               "in the object, after the handlers: .values = { [1] = (void *)&lk_on_icmp, [17] = (void *)&lk_on_udp }")
    else:
        why = (f"handlers holds {', '.join(f'{slots[i]} at {i}' for i in filled)}: the slots are the IP protocol "
               f"numbers, ICMP {PROTOCOLS['ICMP']} and UDP {PROTOCOLS['UDP']}")
    c.part("handlers has a program at slot 1 (ICMP) and at slot 17 (UDP)", {1, 17} <= set(filled)
           and obs["dispatcher"] not in (slots.get(1), slots.get(17)), why if not {1, 17} <= set(filled) else
           "the dispatcher is in its own prog array: a tail call to it starts the dispatch again, until the kernel refuses the 34th jump")
    swapped = runs["icmp"]["counted"] and runs["udp"]["ret"] == XDP_DROP
    if swapped:
        why = (f"ICMP was counted and passed, UDP dropped: the handlers are swapped (slot 1 holds {slots.get(1)}, "
               f"slot 17 {slots.get(17)})")
    elif filled and runs["icmp"]["ret"] == XDP_PASS and not runs["icmp"]["counted"]:
        why = (f"the ICMP packet passed: the dispatcher did not jump to slot 1. Is the index the IPv4 header's "
               "protocol (ip->protocol, after the 14-byte Ethernet header)? bpf_tail_call(ctx, &handlers, "
               "ip->protocol)")
    else:
        why = f"the ICMP packet: {did('icmp')}; its handler drops it (XDP_DROP)"
    c.part("ICMP is dropped", right("icmp") and right("icmp options"),
           why if not right("icmp") else f"ICMP in a header with options: {did('icmp options')} (the protocol "
           "is at the same place, byte 9 of the IPv4 header, whatever its length)")
    c.part("UDP is counted and passed", right("udp"),
           "" if swapped else f"the UDP datagram: {did('udp')}; its handler adds 1 to udp_seen and passes it")
    rest = [k for k in ("tcp", "gre") if not right(k)]
    if rest and all(runs[k]["ret"] == runs["tcp"]["ret"] != XDP_PASS for k in rest):
        why = (f"TCP and GRE, whose slots are empty: {did('tcp')}. A tail call to an empty slot does not jump: "
               "the dispatcher goes on after bpf_tail_call(), and must pass the packet there (return XDP_PASS)")
    else:
        why = "; ".join(f"{PACKETS[k][3]}: {did(k)}" for k in rest) + " (the task: pass it, uncounted)"
    c.part("a protocol without a handler passes (the fall-through)", not rest, why)
    others = [k for k in ("arp", "ipv6", "runt") if not right(k)]
    c.part("frames that are not IPv4 pass", not others,
           "; ".join(f"{PACKETS[k][3]}: {did(k)}" for k in others) + ": check eth->h_proto == "
           "bpf_htons(ETH_P_IP) (and that the header fits before data_end) before reading a protocol: byte 23 of "
           "an ARP or IPv6 frame is something else (here 1 and 17)")
    return c.done(f"yes: ICMP dropped, UDP counted and passed, TCP, GRE, ARP and IPv6 passed; slot 1 {slots.get(1)}, "
                  f"slot 17 {slots.get(17)}", slots=obs["slots"])


# ------------------------------------------------------------------ q2: a pinned counter
#: the second program: another object that declares the map as the task does, pinned by name: libbpf reuses
#: the pinned map only if the definitions are the same
READER = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} calls SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getppid")
int lk_read_calls(void *ctx)
{
    u32 zero = 0;
    u64 *n = bpf_map_lookup_elem(&calls, &zero);
    return n ? 0 : 1;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _count(obj_map) -> int | None:
    df = obj_map.dataframe()
    rows = df[df["key"] == 0] if not df.empty else df
    return int(rows["value"].sum()) if len(rows) else None


def _observe_pinned(answer) -> dict:
    """Run the answer twice with the checker's pin directory: the first run alone (FIRST calls of one child),
    then the second while two children race on two CPUs; then read the pin, and load READER, a second
    program with the task's definition of calls."""
    text = _core_text(answer)
    me = os.getpid()
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        raise LabkitError("this checker needs two CPUs (two counters at once), and this process may run on "
                          f"{len(cpus)}: give the VM two vCPUs")
    with Lab() as lab, PinDir("lk14-q2") as pins:
        try:
            first = _load(lab, text, "ex14_q2_first", rodata={"parent_pid": me}, pin_root=pins)
        except LabkitError as e:
            if "no read-only global" in str(e):
                raise Incorrect(f"{e}.\nThe checker sets parent_pid before it loads the object, as user space sets "
                                "skel->rodata->parent_pid: declare it const volatile u32 parent_pid = 0; (a "
                                "#define or -D is fixed when the object is compiled)") from None
            raise
        if "calls" not in first.maps:
            raise Incorrect(f"the object has no map called 'calls' (its maps: {', '.join(first.maps) or 'none'})")
        if not first.attached_programs():
            raise Incorrect("no program of the object is attached: SEC(\"tracepoint/syscalls/sys_exit_getppid\")")
        made_first = burst(FIRST, cpus[:1], stray=STRAY)
        time.sleep(0.05)
        first_id, first_count = first.maps["calls"].id, _count(first.maps["calls"])
        pinned_first = pins.names()
        first.close()                                     # the first run ends: only a pin keeps its map
        second = _load(lab, text, "ex14_q2_second", rodata={"parent_pid": me}, pin_root=pins)
        second_id = second.maps["calls"].id
        control = lab.attach_tracepoint(lab.load("maps_race", defines={"LK_PARENT_PID": me},
                                                 name="exercise 14 q2 control"), "syscalls:sys_exit_getppid")
        made_second = rounds = control_lost = 0
        deadline = time.monotonic() + RACE_SECONDS
        while control_lost < PROVOKED and rounds < MAX_ROUNDS and (rounds < MIN_ROUNDS
                                                                   or time.monotonic() < deadline):
            made_second += _on_a_thread(burst, CALLS, cpus)
            rounds += 1
            control_lost = made_second - int(control.program["plain"][0].value)
        if control_lost < PROVOKED:    # a count that is not atomic could not have shown itself
            raise LabkitError(f"the checker could not provoke the race: its own plain += lost only {control_lost} of "
                              f"{made_second} calls in {rounds} rounds on CPUs {cpus}; run the check again")
        second_count = _count(second.maps["calls"])
        pinned = pins.names()
        through_pin = None
        if "calls" in pinned:
            with pinned_map(pins.path / "calls") as m:
                through_pin = {"id": m.id, "count": _count(m)}
        try:
            reader = lab.load_object(READER, name="ex14_q2_reader", attach=False, pin_root=pins)
            reader_seen = {"id": reader.maps["calls"].id, "error": ""}
            reader.close()
        except AttachError as e:
            reader_seen = {"id": None, "error": str(e)}
        second.close()
    return {"made_first": made_first, "made_second": made_second, "first_id": first_id, "first_count": first_count,
            "pinned_first": pinned_first, "second_id": second_id, "second_count": second_count, "pinned": pinned,
            "through_pin": through_pin, "reader": reader_seen, "control_lost": control_lost, "rounds": rounds}


def _on_a_thread(fn, *args) -> int:
    """``fn(*args)`` on a new thread of this process (its children's getppid() still returns this process)."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), name="lk-14-forker")
    t.start()
    t.join()
    if not out:
        raise LabkitError("the checker's forking thread failed")
    return out[0]


def _diagnose_pinned(obs: dict) -> tuple[str, dict]:
    """The verdict on q2 from the pins, the map ids of the two runs, the counts and the reader."""
    c = Checklist()
    pinned, first, second = obs["pinned"], obs["made_first"], obs["made_second"]
    if not pinned:
        why = ("nothing was pinned in the checker's pin directory: declare calls with __uint(pinning, "
               "LIBBPF_PIN_BY_NAME), and libbpf pins it at load as <pin root>/calls")
    else:
        why = (f"the pin directory holds {', '.join(pinned)}, not calls: LIBBPF_PIN_BY_NAME pins a map under its "
               "own name: pin calls (the map the task names)")
    c.part("calls is pinned by name", "calls" in pinned, why)
    reused = obs["second_id"] == obs["first_id"]
    c.part("the second run reuses the first run's map", reused,
           f"the second run made a new map (id {obs['second_id']}; the first run's was {obs['first_id']}), and the "
           f"first run's {plural(first, 'call')} were lost with it: without a pin, a map dies with the last program "
           "and file descriptor that hold it, and the next load makes a new one. With calls pinned, libbpf finds "
           "the pin and reuses that map")
    reader = obs["reader"]
    pin = obs["through_pin"] or {}
    if reader["error"]:
        why = (f"a second program declaring calls as the task does (an array of one u64, u32 key, pinned by name) "
               f"could not use the pin: {reader['error'].split(': ', 1)[-1][:300]}")
    else:
        why = (f"a second program declaring calls as the task does got map id {reader['id']}, not the pinned "
               f"{pin.get('id')}: it made its own")
    c.part("a second program with the same definition shares it", "calls" in pinned and not reader["error"]
           and reader["id"] == pin.get("id"), why if "calls" in pinned else "(nothing pinned to share)")
    want = first + second if reused else second
    got = pin.get("count") if pin else obs["second_count"]
    if got is None:
        why = "calls has nothing at key 0: add 1 at key 0 for each call (an array of one u64)"
    elif got == want:
        why = ""
    elif got > want:
        why = (f"{got} calls counted, {want} were made by the checker's children: it counted calls that returned "
               f"another process's id too. Count only when ret == parent_pid (getppid() returns the parent's id)")
    elif got < want and obs["control_lost"] >= PROVOKED and want - got <= want // 4:
        why = (f"{plural(want - got, 'call')} of {want} lost while two CPUs counted at once (the checker's own "
               f"plain += lost {obs['control_lost']}): (*n)++ is a load, an add and a store. Use "
               "__sync_fetch_and_add(n, 1)")
    else:
        why = f"{got} calls counted, {want} made: every getppid() that returned parent_pid counts once, at key 0"
    c.part("counts every call exactly, on two CPUs at once", got == want,
           why + (f" (the first run counted {obs['first_count']} of {first})" if why and reused else ""))
    return c.done(f"yes: calls pinned, the second run went on from the first run's {first} calls "
                  f"(map id {obs['first_id']} both times), {second} more counted exactly while two CPUs raced, and "
                  f"a second program read {got} through the pin", count=got)


def build() -> Lesson:
    """The exercises of lesson 14."""
    return Lesson("14", "A libbpf application", [
        Exercise(
            "q1",
            "Write an XDP dispatcher in CO-RE C: lk_dispatch (SEC(\"xdp\")) tail-calls, through a prog array "
            "handlers (BPF_MAP_TYPE_PROG_ARRAY), the program at the slot of the IPv4 packet's protocol: at 1 "
            "(ICMP) lk_on_icmp, which drops the packet; at 17 (UDP) lk_on_udp, which adds 1 to udp_seen (an array "
            "of one u64, key 0) and passes it. Everything else passes, uncounted: other protocols (their slots "
            "are empty) and frames that are not IPv4. Fill handlers in the object (.values). The checker runs "
            "lk_dispatch on packets it makes (BPF_PROG_TEST_RUN).",
            Check(_observe_dispatch, _diagnose_dispatch),
            "struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 256); __type(key, u32); "
            "__array(values, int (struct xdp_md *)); } handlers SEC(\".maps\") = { .values = { [1] = (void "
            "*)&lk_on_icmp, [17] = (void *)&lk_on_udp } }; after the two handlers. In lk_dispatch: bounds-check "
            "the Ethernet and IPv4 headers, pass unless eth->h_proto == bpf_htons(ETH_P_IP), then "
            "bpf_tail_call(ctx, &handlers, ip->protocol); and return XDP_PASS after it: an empty slot does not "
            "jump.",
            lambda: snippet_text("solution_14_dispatcher.bpf"),
            lambda: "solution_14_dispatcher",
            "c",
        ),
        Exercise(
            "q2",
            "Write a CO-RE counter whose map calls (an array of one u64, key 0) is pinned by name "
            "(LIBBPF_PIN_BY_NAME), and a program on SEC(\"tracepoint/syscalls/sys_exit_getppid\") that adds 1 "
            "for each getppid() that returned parent_pid, a read-only global (const volatile u32) the checker "
            "sets before load. The checker loads it twice with a pin directory of its own, as two runs of a tool: "
            "the second must go on counting in the first one's map (two CPUs count at once), and a second program "
            "reads the count through the pin.",
            Check(_observe_pinned, _diagnose_pinned),
            "const volatile u32 parent_pid = 0; is set by the loader (skel->rodata->parent_pid, or the checker) "
            "before load. Add __uint(pinning, LIBBPF_PIN_BY_NAME); to the map's struct: libbpf pins it at load as "
            "<pin root>/calls and reuses it at the next load. Count with "
            "__sync_fetch_and_add(n, 1) on the value at key 0; the tracepoint's ret field is what getppid() returned.",
            lambda: snippet_text("solution_14_pinned_counter.bpf"),
            lambda: "solution_14_pinned_counter",
            "c",
        ),
    ])
