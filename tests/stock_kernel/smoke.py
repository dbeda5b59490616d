"""Smoke test run inside the stock-kernel guest before pytest (not collected by
pytest: the name does not start with test_).

Proves, with whatever part of labkit exists in the checkout:
* trace_clone picks the hook the kernel allows (LABKIT_EXPECT_HOOK says which,
  "kprobe" on the stock kernel) and sees a fork, a vfork and a thread of ours;
* if labkit has Lab.attach_kprobe and the classic snippet of lesson 01: the
  classic program (a kprobe on the clone syscall printing with
  bpf_trace_printk) attaches and its line for our own fork arrives;
* if labkit has Sandbox and Lab.attach_xdp: the XDP ICMP drop in a sandbox
  drops every ping and counts exactly as many as were sent.

Prints one "SMOKE <check> <ok|FAIL|skip> <detail>" line per check, exits 1 on
any FAIL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback

failures = 0


def report(check: str, status: str, detail: str = "") -> None:
    global failures
    if status == "FAIL":
        failures += 1
    print(f"SMOKE {check} {status} {detail}".rstrip(), flush=True)


def clone_check(labkit) -> None:
    expect = os.environ.get("LABKIT_EXPECT_HOOK", "")
    t0 = time.monotonic()
    with labkit.Lab() as lab:
        s = lab.trace_clone(pid=os.getpid())
        t_attach = time.monotonic() - t0
        print(f"trace_clone source: {s.source}  ({getattr(s, 'hook_note', '')}); "
              f"compile+attach {t_attach:.1f} s", flush=True)
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        child = subprocess.Popen(["/bin/true"])  # vfork (or clone3 with CLONE_VFORK)
        child.wait()
        th = threading.Thread(target=lambda: None)
        th.start()
        th.join()
        wanted = {pid, child.pid}

        def seen(df):
            return wanted <= set(df["child_pid"]) and (df["kind"] == "thread").any()

        ok = s.wait(seen, timeout=15)
        df = s.to_dataframe()
        source = s.source
        s.stop()
    kinds = sorted(set(df["kind"])) if len(df) else []
    detail = f"source={source} events={len(df)} kinds={kinds} compile+attach={t_attach:.1f}s"
    if not ok:
        report("trace_clone", "FAIL", f"missing events for {sorted(wanted)} or a thread; {detail}")
    elif expect and not source.startswith(expect + ":"):
        report("trace_clone", "FAIL", f"LABKIT_EXPECT_HOOK={expect} but {detail}")
    else:
        report("trace_clone", "ok", detail)


def classic_kprobe_check(labkit) -> None:
    snippet = os.path.join(os.path.dirname(os.path.dirname(labkit.__file__)), "bpf_snippets",
                           "hello_clone_classic.c")
    if not hasattr(labkit.Lab, "attach_kprobe") or not hasattr(labkit, "read_trace_pipe") \
            or not os.path.exists(snippet):
        report("classic_kprobe", "skip", "no Lab.attach_kprobe / read_trace_pipe / hello_clone_classic.c yet")
        return
    with labkit.Lab() as lab:
        classic = lab.load("hello_clone_classic")
        hello = lab.attach_kprobe(classic, syscall="clone")
        hook = getattr(hello, "hook", "?")
        labkit.read_trace_pipe(timeout=0.5, idle=0.2)  # drop older lines
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        df = labkit.read_trace_pipe(timeout=5, idle=1.0, contains="clone by uid")
        hello.detach()
    ours = df[df["pid"] == os.getpid()] if len(df) else df
    detail = f"hook={hook} lines={len(df)} ours={len(ours)}"
    if not str(hook).startswith("kprobe") or len(ours) < 1:
        report("classic_kprobe", "FAIL", detail)
    else:
        report("classic_kprobe", "ok", detail)


def xdp_check(labkit) -> None:
    if not hasattr(labkit, "Sandbox") or not hasattr(labkit.Lab, "attach_xdp"):
        report("xdp_drop", "skip", "labkit has no Sandbox/attach_xdp yet")
        return
    n = 5
    with labkit.Sandbox() as sb, labkit.Lab() as lab:
        before = sb.ping(count=2, interval=0.2, timeout=2)
        x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
        res = sb.ping(count=n, interval=0.2, timeout=1)
        counters = x.counters()
        hook = getattr(x, "hook", "?")
        x.detach()
        after = sb.ping(count=2, interval=0.2, timeout=2)
    print(counters.to_string(), flush=True)
    drop = counters[(counters["action"].astype(str).str.lower().str.contains("drop"))
                    & (counters["protocol"].astype(str).str.lower().str.contains("icmp"))]
    dropped = int(drop["packets"].sum()) if len(drop) else 0
    detail = (f"hook={hook} before={before.received}/{before.transmitted} during={res.received}/{res.transmitted} "
              f"dropped_icmp={dropped} after={after.received}/{after.transmitted}")
    if before.received != before.transmitted or res.received != 0 or dropped != n \
            or after.received != after.transmitted:
        report("xdp_drop", "FAIL", detail)
    else:
        report("xdp_drop", "ok", detail)


def main() -> int:
    try:
        import labkit
    except Exception:
        traceback.print_exc()
        report("import", "FAIL", "import labkit failed")
        return 1
    report("import", "ok", f"labkit {getattr(labkit, '__version__', '?')} from {os.path.dirname(labkit.__file__)}")
    for check in (clone_check, classic_kprobe_check, xdp_check):
        try:
            check(labkit)
        except Exception as e:
            traceback.print_exc()
            report(check.__name__.replace("_check", ""), "FAIL", f"{type(e).__name__}: {e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
