// labkit snippet: solution_11_runq_latency: lesson 11 q1's reference answer. Run-queue latency of the
// process LK_FILTER_PID (one thread: its thread id is its pid), as a log2 histogram of microseconds.
// hook: tracepoints sched:sched_wakeup, sched:sched_wakeup_new, sched:sched_switch (attached by lab.load)
// min kernel: 4.7
#include "labkit.h"

BPF_HASH(start, u32, u64, 10240);   // thread id -> when it was woken (ns)
BPF_HISTOGRAM(dist, int, 64);       // log2(microseconds waited) -> wakeups

static __always_inline int lk_enqueued(u32 tid)
{
    if (!lk_wanted(tid))
        return 0;
    u64 now = bpf_ktime_get_ns();
    start.update(&tid, &now);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup)
{
    return lk_enqueued(args->pid);
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    return lk_enqueued(args->pid);
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    u32 tid = args->next_pid;           // the thread that runs now
    u64 *t0 = start.lookup(&tid);
    if (!t0)
        return 0;
    dist.atomic_increment(bpf_log2l((bpf_ktime_get_ns() - *t0) / 1000));
    start.delete(&tid);                 // counted once: the next count needs a new wakeup
    return 0;
}
