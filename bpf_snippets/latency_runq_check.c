// labkit snippet: latency_runq_check: lesson 11 q1's control. The run-queue latency of one thread
// (LK_FILTER_PID: a single-threaded process, whose thread id is its pid) measured the right way and the
// ways students get it wrong, side by side on the same events, each as a log2 histogram of microseconds.
// hook: tracepoints sched:sched_wakeup, sched:sched_wakeup_new, sched:sched_switch (attached by lab.load)
// min kernel: 4.7 (BPF on tracepoints)
//
//   right     wakeup -> the switch that runs it (next_pid), start deleted there
//   prev      wakeup -> the switch that takes it off (prev_pid): queued time plus run time
//   keep      as right, start never deleted: every later switch-in counts again, from the old wakeup
//   wake      wakeup -> its next wakeup (the time between wakeups)
//   all       as right, for every thread of the machine (no filter)
#include "labkit.h"

BPF_HASH(s_right, u32, u64, 10240);
BPF_HASH(s_prev, u32, u64, 10240);
BPF_HASH(s_keep, u32, u64, 10240);
BPF_HASH(s_wake, u32, u64, 10240);
BPF_HASH(s_all, u32, u64, 10240);
BPF_HISTOGRAM(h_right, int, 64);
BPF_HISTOGRAM(h_prev, int, 64);
BPF_HISTOGRAM(h_keep, int, 64);
BPF_HISTOGRAM(h_wake, int, 64);
BPF_HISTOGRAM(h_all, int, 64);

static __always_inline int lk_woken(u32 tid)
{
    u64 now = bpf_ktime_get_ns();
    s_all.update(&tid, &now);
    if (tid != LK_FILTER_PID)
        return 0;
    u64 *last = s_wake.lookup(&tid);
    if (last)
        h_wake.atomic_increment(bpf_log2l((now - *last) / 1000));
    s_wake.update(&tid, &now);
    s_right.update(&tid, &now);
    s_prev.update(&tid, &now);
    s_keep.update(&tid, &now);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup)
{
    return lk_woken(args->pid);
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    return lk_woken(args->pid);
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    u32 next = args->next_pid, prev = args->prev_pid;
    u64 *t0 = s_all.lookup(&next);
    if (t0) {
        h_all.atomic_increment(bpf_log2l((now - *t0) / 1000));
        s_all.delete(&next);
    }
    t0 = s_prev.lookup(&prev);
    if (t0) {
        h_prev.atomic_increment(bpf_log2l((now - *t0) / 1000));
        s_prev.delete(&prev);
    }
    t0 = s_right.lookup(&next);
    if (t0) {
        h_right.atomic_increment(bpf_log2l((now - *t0) / 1000));
        s_right.delete(&next);
    }
    t0 = s_keep.lookup(&next);
    if (t0)
        h_keep.atomic_increment(bpf_log2l((now - *t0) / 1000));
    return 0;
}
