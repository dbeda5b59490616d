// labkit snippet: usleep_latency: how long libc's usleep() really takes, as a log2 histogram of microseconds.
// hook: uprobe + uretprobe on libc's usleep (kprobe-type programs: lab.attach_uprobe(prog, "c", "usleep", fn, ret=...))
// min kernel: 4.17 (uprobes through perf_event_open; uretprobes since 3.5)
//
// lk_usleep_entry runs when a thread enters usleep() and notes the time under
// its thread id; lk_usleep_return runs when that call returns and files the
// difference by its log2: bucket k holds calls of 2^(k-1) .. 2^k - 1 us, as
// BCC's print_log2_hist reads it. Only the process LK_FILTER_PID (0: all).
// The buckets are shared by the CPUs, hence atomic_increment.
#include "labkit.h"

BPF_HASH(started, u32, u64, 10240);   // thread id -> when its usleep() began (ns)
BPF_HISTOGRAM(latency_us, int, 64);   // log2(microseconds) -> calls

int lk_usleep_entry(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = (u32)id;
    u64 now = bpf_ktime_get_ns();
    started.update(&tid, &now);
    return 0;
}

int lk_usleep_return(struct pt_regs *ctx)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 *t0 = started.lookup(&tid);
    if (!t0)
        return 0;                        // entered before we attached, or another process
    u64 us = (bpf_ktime_get_ns() - *t0) / 1000;
    latency_us.atomic_increment(bpf_log2l(us));
    started.delete(&tid);
    return 0;
}
