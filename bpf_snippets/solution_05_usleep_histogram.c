// labkit snippet: solution_05_usleep_histogram: lesson 05, exercise solved: the microseconds one process asks usleep() for, as a log2 histogram.
// hook: uprobe on libc's usleep (a kprobe-type program: lab.attach_uprobe(prog, "c", "usleep"))
// min kernel: 4.17 (uprobes through perf_event_open)
//
// A uprobe's function sees the registers at the call: PT_REGS_PARM1(ctx) is
// the first argument. bpf_log2l(us) is floor(log2(us)) + 1 (0 for 0): bucket k
// holds 2^(k-1) .. 2^k - 1 us, as BCC's print_log2_hist reads it. The buckets
// are shared by the process's threads (two CPUs at once): atomic_increment.
#include <uapi/linux/ptrace.h>
#include "labkit.h"

BPF_HISTOGRAM(dist, int, 64);

int lk_usleep_arg(struct pt_regs *ctx)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u64 us = PT_REGS_PARM1(ctx);
    dist.atomic_increment(bpf_log2l(us));
    return 0;
}
