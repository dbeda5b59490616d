// labkit snippet: offcpu_time: where one process waits: microseconds off the CPU, per (user stack, kernel stack).
// hook: tracepoint sched:sched_switch (lab.attach_tracepoint; BCC declares the struct of its arguments)
// min kernel: 4.9 (bpf_get_stackid in a tracepoint program)
//
// sched_switch runs in the task that is leaving the CPU (prev), just before
// the next one runs. When a thread of LK_FILTER_PID leaves, note the time and
// the stacks it leaves from (where it blocked, or was preempted); when it is
// switched in again, add the time it was away to those stacks. The kernel
// stack shows how it got into the scheduler (a sleep, a read that waits);
// the user stack which of its functions asked.
#include "labkit.h"

struct where {
    int user_stack_id;
    int kernel_stack_id;
};
struct left {
    u64 ns;
    struct where where;
};

BPF_STACK_TRACE(stacks, 4096);    // room to spare: a stack whose hash finds its slot taken gets -EEXIST
BPF_HASH(leaving, u32, struct left, 10240);      // thread id -> when and from where it left the CPU
BPF_HASH(offcpu_us, struct where, u64, 1024);    // stacks -> microseconds off the CPU

int lk_offcpu(struct tracepoint__sched__sched_switch *args)
{
    u64 now = bpf_ktime_get_ns();
    if (lk_wanted(bpf_get_current_pid_tgid() >> 32)) {
        u32 prev = args->prev_pid;
        struct left l = {};
        l.ns = now;
        l.where.user_stack_id = stacks.get_stackid(args, BPF_F_USER_STACK);
        l.where.kernel_stack_id = stacks.get_stackid(args, 0);
        leaving.update(&prev, &l);
    }
    u32 next = args->next_pid;
    struct left *l = leaving.lookup(&next);
    if (!l)
        return 0;
    struct where w = l->where;
    u64 us = (now - l->ns) / 1000;
    leaving.delete(&next);
    u64 zero = 0, *total = offcpu_us.lookup_or_try_init(&w, &zero);
    if (total)
        __sync_fetch_and_add(total, us);
    return 0;
}
