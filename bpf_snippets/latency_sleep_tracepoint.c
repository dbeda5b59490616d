// labkit snippet: latency_sleep_tracepoint: how long clock_nanosleep() takes, as a log2 histogram of
// microseconds, timed by the syscall's entry and exit tracepoints (Lab.load attaches TRACEPOINT_PROBEs).
// hook: tracepoints syscalls:sys_enter_clock_nanosleep, syscalls:sys_exit_clock_nanosleep
// min kernel: 4.7
//
// What every kernel has, when it allows neither fentry nor kprobes: the whole syscall, entry to exit (a
// little more than do_nanosleep(), which it calls). Only the process LK_FILTER_PID (0: all).
#include "labkit.h"

BPF_HASH(started, u32, u64, 10240);   // thread id -> when its clock_nanosleep() began (ns)
BPF_HISTOGRAM(latency_us, int, 64);   // log2(microseconds) -> calls

TRACEPOINT_PROBE(syscalls, sys_enter_clock_nanosleep)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = id;
    u64 now = bpf_ktime_get_ns();
    started.update(&tid, &now);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_clock_nanosleep)
{
    u32 tid = bpf_get_current_pid_tgid();
    u64 *t0 = started.lookup(&tid);
    if (!t0)
        return 0;
    latency_us.atomic_increment(bpf_log2l((bpf_ktime_get_ns() - *t0) / 1000));
    started.delete(&tid);
    return 0;
}
