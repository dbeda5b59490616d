"""Lesson 13, cgroup programs: q1 refuses TCP connects to one port for one cgroup (a connect4 program on the
parent of the checker's two cgroups, a and b), q2 counts the bytes one cgroup's sockets receive and send
(cgroup_skb on ingress and egress of that parent). Each checker observes on the kernel (children in the
lab's own cgroups connect to listeners of the checker on 127.0.0.1), then a pure function decides from what
was observed (``_diagnose_connect``, ``_diagnose_bytes``)."""

from __future__ import annotations

import json
import re
import socket
import struct
import sys
import threading

from labkit.exercises.framework import Check, Checklist, Exercise, Incorrect, Lesson, load_answer, need_map, \
    snippet_text
from labkit.hooks.cgroup import Cgroup
from labkit.lab import Lab

__all__ = ["BACK", "SENT", "build", "listeners", "swapped"]

EPERM = 1
#: q2's traffic: what the child in each cgroup sends, and what the checker's listener sends back
SENT = {"a": 300_000, "b": 120_000}
BACK = {"a": 60_000, "b": 180_000}
#: a child's bound on one socket operation (a dropped packet is retransmitted until then)
SOCKET_TIMEOUT = 2.0

_TRY = """
import json, socket, sys
out = {}
for name, proto, port in json.loads(sys.argv[1]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        out[name] = 0
    except OSError as e:
        out[name] = e.errno or -1
    finally:
        s.close()
print(json.dumps(out))
"""

_TRANSFER = """
import json, socket, struct, sys
port, send, back, timeout = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket()
s.settimeout(timeout)
got, error = 0, None
try:
    s.connect(("127.0.0.1", port))
    s.sendall(struct.pack("!Q", back) + b"x" * send)
    s.shutdown(socket.SHUT_WR)
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += len(d)
except OSError as e:
    error = f"{type(e).__name__}: {e}"
print(json.dumps({"ok": error is None and got == back, "error": error, "received": got}))
"""


def swapped(port: int) -> int:
    """``port`` with its two bytes swapped: what a host-order comparison matches on a little-endian CPU."""
    return ((port & 0xFF) << 8) | (port >> 8)


def listeners(n: int = 3) -> list[socket.socket]:
    """``n`` listening sockets on 127.0.0.1: a port P, then P with its bytes swapped (both above 1023),
    then others."""
    while True:
        first = socket.socket()
        first.bind(("127.0.0.1", 0))
        p = first.getsockname()[1]
        q = swapped(p)
        if q < 1024 or q == p:
            first.close()
            continue
        second = socket.socket()
        try:
            second.bind(("127.0.0.1", q))
        except OSError:
            first.close()
            second.close()
            continue
        out = [first, second]
        for _ in range(n - 2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            out.append(s)
        for s in out:
            s.listen(16)
        return out


def _run_child(cg: Cgroup, code: str, *args) -> dict:
    out = cg.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"the checker's child in cgroup {cg.name} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


# ------------------------------------------------------------------ q1: refuse one port for one cgroup
def _observe_connect(answer) -> dict:
    """Attach the answer (connect4) to the parent of cgroups a and b; children in a and b connect to the
    checker's port P, to P with its bytes swapped, to another port (TCP), and to P over UDP."""
    socks = listeners(3)
    port, swap, other = (s.getsockname()[1] for s in socks)
    try:
        with Lab() as lab, Cgroup("lk13-q1") as parent:
            a, b = parent.child("a"), parent.child("b")
            prog = load_answer(lab, answer, name="your answer", need="cgroup",
                               defines={"LK13_PORT": port, "LK13_CGROUP": a.id})
            if not any(_takes(prog.source, f, "struct bpf_sock_addr") for f in prog.functions):
                raise Incorrect("the program has no function taking struct bpf_sock_addr *: a connect4 program "
                                "gets one (int fn(struct bpf_sock_addr *ctx))")
            fn = _only(prog, "struct bpf_sock_addr", "connect4")
            lab.attach_cgroup(prog, parent, "connect4", fn=fn)
            tries_a = [["a tcp port", "tcp", port], ["a tcp swapped", "tcp", swap], ["a tcp other", "tcp", other],
                       ["a udp port", "udp", port]]
            seen = {**_run_child(a, _TRY, json.dumps(tries_a)),
                    **_run_child(b, _TRY, json.dumps([["b tcp port", "tcp", port]]))}
            ids = {"a": a.id, "b": b.id}
    finally:
        for s in socks:
            s.close()
    return {"port": port, "swapped": swap, "other": other, "ids": ids, "tries": seen}


def _only(prog, ctx: str, what: str) -> str | None:
    fns = [f for f in prog.functions if _takes(prog.source, f, ctx)]
    if len(prog.functions) <= 1:
        return None
    if len(fns) == 1:
        return fns[0]
    raise Incorrect(f"the program has {len(prog.functions)} functions ({', '.join(prog.functions)}) and the checker "
                    f"cannot tell which one is the {what} program: keep one function that takes {ctx} * (make "
                    "helpers static __always_inline)")


def _takes(source: str, fn: str, ctx: str) -> bool:
    spaced = r"\s+".join(map(re.escape, ctx.split()))
    return re.search(rf"\b{re.escape(fn)}\s*\(\s*{spaced}\s*\*", source) is not None


def _diagnose_connect(obs: dict) -> tuple[str, dict]:
    """The verdict on q1 from the errno of each connect (0: connected, 1: EPERM, refused by the program)."""
    t, port, swap, other = obs["tries"], obs["port"], obs["swapped"], obs["other"]
    refused = {k: v == EPERM for k, v in t.items()}
    c = Checklist()
    if refused["a tcp port"]:
        why = ""
    elif refused["a tcp swapped"] and not refused["a tcp other"]:
        why = (f"port {port} was let through and port {swap} refused instead: {swap} is {port} with its two bytes "
               "swapped. ctx->user_port holds the port in network byte order, as the socket does: compare it with "
               "bpf_htons(LK13_PORT)")
    elif refused["a tcp other"] or refused["b tcp port"]:
        why = (f"port {port} was let through while connects the task lets go were refused: are the return values "
               "inverted? A connect4 program returns 0 to refuse (connect() fails with EPERM) and 1 to let it go")
    else:
        got = "connected" if t["a tcp port"] == 0 else f"got errno {t['a tcp port']}, not EPERM"
        why = (f"nothing was refused: a process in cgroup a {got} (port {port}). A connect4 program refuses "
               "with return 0 (1 lets the connect go on); test "
               "ctx->protocol == IPPROTO_TCP, ctx->user_port == bpf_htons(LK13_PORT) and "
               "bpf_get_current_cgroup_id() == LK13_CGROUP")
    c.part("refuses TCP to the port from cgroup a", refused["a tcp port"], why)
    c.part("lets other ports through", not refused["a tcp other"],
           f"a TCP connect to port {other} (not the task's port) was refused too: every port is refused. Test "
           "ctx->user_port == bpf_htons(LK13_PORT) before refusing")
    c.part("only cgroup a", not refused["b tcp port"],
           f"a process in cgroup b was refused too (port {port}): the program sits on the parent of a and b, so "
           "it runs for both (on the root cgroup it would run for every process): refuse only when "
           "bpf_get_current_cgroup_id() == LK13_CGROUP")
    c.part("TCP only", not refused["a udp port"],
           f"a UDP socket's connect() to port {port} was refused too: connect4 runs for UDP's connect() as well. "
           "Test ctx->protocol == IPPROTO_TCP (or ctx->type == SOCK_STREAM)")
    return c.done(f"yes: from cgroup a, TCP to port {port} was refused with EPERM while port {swap} (its bytes "
                  f"swapped), port {other} and UDP to {port} went through, and cgroup b connected to {port}",
                  port=port)


# ------------------------------------------------------------------ q2: bytes per cgroup
def _serve(ls: socket.socket, stop: threading.Event) -> None:
    """Each connection: 8 bytes saying how much to send back, then data until the peer's end; then send."""
    ls.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = ls.accept()
        except OSError:
            continue
        with conn:
            conn.settimeout(SOCKET_TIMEOUT * 2)
            try:
                head = b""
                while len(head) < 8:
                    d = conn.recv(8 - len(head))
                    if not d:
                        raise OSError("closed")
                    head += d
                while conn.recv(65536):
                    pass
                conn.sendall(b"y" * struct.unpack("!Q", head)[0])
            except OSError:
                pass


def _functions(prog) -> dict:
    fns = {d: [f for f in prog.functions if d in f.lower() and not (d == "egress" and "ingress" in f.lower())]
           for d in ("ingress", "egress")}
    if not fns["ingress"] and not fns["egress"]:
        raise Incorrect(f"the checker cannot tell which function goes where ({', '.join(prog.functions)}): name the "
                        "one for what the cgroup receives with 'ingress' in it and the one for what it sends with "
                        "'egress' (lk_13_ingress, lk_13_egress)")
    for d, found in fns.items():
        if len(found) > 1:
            raise Incorrect(f"{len(found)} functions have '{d}' in their name ({', '.join(found)}): keep one")
    return {d: (found[0] if found else None) for d, found in fns.items()}


def _pairs(prog, name: str) -> list[list[int]]:
    return [[int(k.value), int(v.value)] for k, v in prog[name].items()]


def _observe_bytes(answer) -> dict:
    """Attach the answer's ingress and egress functions to the parent of cgroups a and b; a child in each
    sends SENT bytes to the checker's listener, which sends BACK bytes back; then read rx_bytes and tx_bytes."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    stop = threading.Event()
    server = threading.Thread(target=_serve, args=(ls, stop), name="lk13-q2-listener", daemon=True)
    server.start()
    try:
        with Lab() as lab, Cgroup("lk13-q2") as parent:
            a, b = parent.child("a"), parent.child("b")
            prog = load_answer(lab, answer, name="your answer", need="cgroup", defines={"LK13_CGROUP": a.id})
            need_map(prog, "rx_bytes")
            need_map(prog, "tx_bytes")
            fns = _functions(prog)
            for direction, fn in fns.items():
                if fn is not None:
                    lab.attach_cgroup(prog, parent, direction, fn=fn)
            port = ls.getsockname()[1]
            transfers = {n: _run_child(cg, _TRANSFER, port, SENT[n], BACK[n], SOCKET_TIMEOUT)
                         for n, cg in (("a", a), ("b", b))}
            rx, tx = _pairs(prog, "rx_bytes"), _pairs(prog, "tx_bytes")
            ids = {"a": a.id, "b": b.id}
    finally:
        stop.set()
        server.join(timeout=10)
        ls.close()
    return {"ids": ids, "functions": fns, "transfers": transfers, "rx": rx, "tx": tx}


def _near(got: int | None, payload: int) -> bool:
    """The IP packets of ``payload`` bytes of TCP data: the payload and, at most, a tenth more and 16 KiB of
    headers, handshake and acknowledgements."""
    return got is not None and payload <= got <= payload * 1.1 + 16384


def _diagnose_bytes(obs: dict) -> tuple[str, dict]:
    """The verdict on q2 from what the maps held after the children's transfers."""
    ids, fns, tr = obs["ids"], obs["functions"], obs["transfers"]
    rx, tx = dict(map(tuple, obs["rx"])), dict(map(tuple, obs["tx"]))
    a, b = str(ids["a"]), str(ids["b"])
    rx = {str(k): v for k, v in rx.items()}
    tx = {str(k): v for k, v in tx.items()}
    c = Checklist()
    failed = [n for n in ("a", "b") if not tr[n]["ok"]]
    c.part("lets the traffic through", not failed,
           "the transfer of cgroup " + " and ".join(failed) + " failed while the program was attached ("
           + "; ".join(f"{n}: {tr[n]['error'] or str(tr[n]['received']) + ' bytes back'}" for n in failed)
           + "): a cgroup_skb program returns 1 to let a packet go; 0 drops it (the sender sees EPERM, TCP "
           "retransmits until it gives up)")

    def direction(name: str, got: dict, payload: int, other_payload: int, fn: str | None, label: str) -> None:
        n = got.get(a)
        if fn is None:
            why = (f"no function for {label} (its name must contain '{name}'): the task asks for both directions; "
                   f"nothing was counted for {label}")
        elif failed:
            why = (f"{name} counted {n or 0} for cgroup a, but the traffic did not get through (see above): nothing "
                   "to compare")
        elif n is None or n == 0:
            why = (f"{name} counted nothing for cgroup a ({fn} is attached at {label}): does it add skb->len to "
                   f"{'rx_bytes' if name == 'ingress' else 'tx_bytes'} at the key bpf_skb_cgroup_id(skb)?")
        elif n < payload // 100:
            why = (f"{name} counted {n} for cgroup a, which moved {payload} bytes of data that way: counts packets, "
                   "not bytes? Add skb->len (the packet's length from its IP header on)")
        elif _near(n, other_payload) and not _near(n, payload):
            why = (f"{name} counted {n} for cgroup a, about what it moved the other way ({other_payload}): are "
                   "ingress and egress swapped? ingress is what the cgroup's sockets receive")
        else:
            why = (f"{name} counted {n} for cgroup a, which moved {payload} bytes of data that way (with headers: "
                   f"{payload} to {int(payload * 1.1 + 16384)})")
        c.part(f"counts cgroup a's bytes {label}", fn is not None and not failed and _near(n, payload), why)

    direction("egress", tx, SENT["a"], BACK["a"], fns.get("egress"), "sent (egress)")
    direction("ingress", rx, BACK["a"], SENT["a"], fns.get("ingress"), "received (ingress)")
    keys = set(rx) | set(tx)
    strangers = sorted(keys - {a, b})
    if b in keys:
        why = (f"cgroup b's bytes were counted too (key {b}): the program sits on the parent of a and b and runs "
               "for both: count only when bpf_skb_cgroup_id(skb) == LK13_CGROUP")
    else:
        why = (f"the maps hold keys {', '.join(strangers[:4])}, which are not cgroup ids: the key is the cgroup of "
               "the packet's socket, bpf_skb_cgroup_id(skb)")
    c.part("only cgroup a, keyed by its id", not strangers and b not in keys, why)
    return c.done(f"yes: cgroup a sent {SENT['a']} bytes and received {BACK['a']} (your maps: {tx.get(a)} and "
                  f"{rx.get(a)}, with the IP and TCP headers), and cgroup b's traffic was left out",
                  rx=rx.get(a), tx=tx.get(a))


def build() -> Lesson:
    """The exercises of lesson 13."""
    return Lesson("13", "cgroup programs", [
        Exercise(
            "q1",
            "Write a connect4 program (int fn(struct bpf_sock_addr *ctx)) that refuses TCP connects to port "
            "LK13_PORT from the processes of cgroup LK13_CGROUP only, and lets everything else go on. The checker "
            "attaches it to the parent of two cgroups, a (whose id it passes as -DLK13_CGROUP) and b, and passes "
            "its listener's port as -DLK13_PORT; children in a and b connect.",
            Check(_observe_connect, _diagnose_connect),
            "Return 0 to refuse (connect() fails with EPERM), 1 to let it go. ctx->protocol says TCP "
            "(IPPROTO_TCP) or UDP; ctx->user_port is the port in network byte order (compare with "
            "bpf_htons(LK13_PORT)); bpf_get_current_cgroup_id() is the cgroup of the process that connects.",
            lambda: snippet_text("solution_13_connect_block"),
            lambda: "solution_13_connect_block",
            "c",
        ),
        Exercise(
            "q2",
            "Write two cgroup_skb functions, one with 'ingress' in its name (what a cgroup's sockets receive) and "
            "one with 'egress' (what they send), that add the bytes of each packet of cgroup LK13_CGROUP's sockets "
            "to BPF_HASH(rx_bytes, u64, u64) and BPF_HASH(tx_bytes, u64, u64), keyed by the cgroup id, and let "
            "every packet go. The checker attaches them to the parent of cgroups a (-DLK13_CGROUP) and b; a "
            f"child in a sends {SENT['a']} bytes over TCP and gets {BACK['a']} back, one in b {SENT['b']} and "
            f"{BACK['b']}.",
            Check(_observe_bytes, _diagnose_bytes),
            "u64 id = bpf_skb_cgroup_id(skb) is the cgroup of the packet's socket; skb->len is the packet's length "
            "(from the IP header on). u64 zero = 0, *n = tx_bytes.lookup_or_try_init(&id, &zero); if (n) "
            "__sync_fetch_and_add(n, skb->len); and return 1 (0 drops the packet).",
            lambda: snippet_text("solution_13_cgroup_bytes"),
            lambda: "solution_13_cgroup_bytes",
            "c",
        ),
    ])
