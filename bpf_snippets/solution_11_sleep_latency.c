// labkit snippet: solution_11_sleep_latency: lesson 11 q2's reference answer. How long the
// clock_nanosleep() calls of the process LK_FILTER_PID take, every thread of it, as a log2 histogram of
// microseconds (the funclatency way: the entry's time under the thread id, the difference at the exit).
// hook: tracepoints syscalls:sys_enter_clock_nanosleep, sys_exit_clock_nanosleep (attached by lab.load)
// min kernel: 4.7
#include "labkit.h"

BPF_HASH(start, u32, u64, 10240);   // thread id -> when its call began (ns)
BPF_HISTOGRAM(dist, int, 64);       // log2(microseconds) -> calls

TRACEPOINT_PROBE(syscalls, sys_enter_clock_nanosleep)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))           // the process: the upper half
        return 0;
    u32 tid = id;                       // the thread: two threads may sleep at once
    u64 now = bpf_ktime_get_ns();
    start.update(&tid, &now);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_clock_nanosleep)
{
    u32 tid = bpf_get_current_pid_tgid();
    u64 *t0 = start.lookup(&tid);
    if (!t0)
        return 0;
    u64 us = (bpf_ktime_get_ns() - *t0) / 1000;   // nanoseconds -> microseconds
    dist.atomic_increment(bpf_log2l(us));
    start.delete(&tid);
    return 0;
}
