// labkit snippet: solution_10_offcpu: lesson 10, exercise solved: microseconds one process spends off the CPU, per user stack.
// hook: tracepoint sched:sched_switch (lab.attach_tracepoint; BCC declares the struct of its arguments)
// min kernel: 4.9 (bpf_get_stackid in a tracepoint program)
//
// sched_switch runs in the task leaving the CPU: its user stack is where it
// waits. Keep the time and that stack under its thread id (args->prev_pid);
// when that thread comes back (args->next_pid), add the difference, in
// microseconds, to its stack. The stack must be taken when it leaves: when it
// comes back, the task running the tracepoint is the one leaving then.
#include "labkit.h"

struct left {
    u64 ns;
    int stack_id;
};

BPF_STACK_TRACE(stacks, 1024);
BPF_HASH(leaving, u32, struct left, 10240);
BPF_HASH(offcpu, int, u64, 1024);

int lk_offcpu_sum(struct tracepoint__sched__sched_switch *args)
{
    u64 now = bpf_ktime_get_ns();
    if (lk_wanted(bpf_get_current_pid_tgid() >> 32)) {
        u32 prev = args->prev_pid;
        struct left l = {now, stacks.get_stackid(args, BPF_F_USER_STACK)};
        leaving.update(&prev, &l);
    }
    u32 next = args->next_pid;
    struct left *l = leaving.lookup(&next);
    if (!l)
        return 0;
    int stack_id = l->stack_id;
    u64 us = (now - l->ns) / 1000;
    leaving.delete(&next);
    u64 zero = 0, *total = offcpu.lookup_or_try_init(&stack_id, &zero);
    if (total)
        __sync_fetch_and_add(total, us);
    return 0;
}
