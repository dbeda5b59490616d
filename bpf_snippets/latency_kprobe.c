// labkit snippet: latency_kprobe: how long the kernel's do_nanosleep() takes, as a log2 histogram of
// microseconds, timed by a kprobe and a kretprobe (lab.attach_kprobe(prog, "do_nanosleep", fn, ret=...)).
// hook: kprobe + kretprobe on do_nanosleep
// min kernel: 4.1, built with CONFIG_KPROBES (Debian's are; the lab VM's 6.18 is not: NotSupportedError)
//
// The same measurement as fentry/fexit make (lesson 11), by the older mechanism: a breakpoint (or a jump, when the
// kernel can optimise it) on the function's first instruction, and its return address swapped for a
// trampoline. Only the process LK_FILTER_PID (0: all).
#include <uapi/linux/ptrace.h>
#include "labkit.h"

BPF_HASH(started, u32, u64, 10240);   // thread id -> when its do_nanosleep() began (ns)
BPF_HISTOGRAM(latency_us, int, 64);   // log2(microseconds) -> calls

int lk_nanosleep_in(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = id;
    u64 now = bpf_ktime_get_ns();
    started.update(&tid, &now);
    return 0;
}

int lk_nanosleep_out(struct pt_regs *ctx)
{
    u32 tid = bpf_get_current_pid_tgid();
    u64 *t0 = started.lookup(&tid);
    if (!t0)
        return 0;
    latency_us.atomic_increment(bpf_log2l((bpf_ktime_get_ns() - *t0) / 1000));
    started.delete(&tid);
    return 0;
}
