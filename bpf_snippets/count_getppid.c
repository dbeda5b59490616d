// labkit snippet: count_getppid: count getppid() calls in a per-CPU array (no events at all).
// hook: tracepoint syscalls:sys_enter_getppid
// min kernel: 4.7 (tracepoints + BPF)
//
// Lesson 03 runs it next to lab.trace_syscall("getppid") (one event per call)
// and compares: the count is exact and cheap, the events cost more and can be
// lost when the ring buffer fills.
#include "labkit.h"

BPF_PERCPU_ARRAY(calls, u64, 1);     // one counter per CPU: no atomics, no contention

int lk_count_getppid(void *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!lk_wanted(tgid))
        return 0;
    calls.increment(0);
    return 0;
}
