// labkit snippet: profile_stacks: where one process spends its CPU time, counted per (thread, user stack, kernel stack).
// hook: perf_event (the software CPU clock, sampled at a frequency on every CPU: lab.attach_perf_event)
// min kernel: 4.9 (BPF_PROG_TYPE_PERF_EVENT, bpf_get_stackid)
//
// At every tick of the CPU clock, in whatever runs on that CPU: if it belongs
// to the process LK_FILTER_PID, take two stacks with a frame-pointer walk —
// the user stack (BPF_F_USER_STACK: the process's own functions) and the
// kernel stack (flags 0: what the kernel was doing, if it was in the kernel) —
// store them in `stacks` (an id per distinct stack) and count the sample under
// (tid, user stack id, kernel stack id). A negative id is -errno: -EFAULT
// (-14) for a kernel stack means the CPU was running the process's own code.
#include <uapi/linux/bpf_perf_event.h>
#include "labkit.h"

struct sample_key {
    u32 tid;
    int user_stack_id;
    int kernel_stack_id;
};

BPF_STACK_TRACE(stacks, 4096);
BPF_HASH(counts, struct sample_key, u64, 4096);

int lk_profile(struct bpf_perf_event_data *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    struct sample_key key = {};
    key.tid = (u32)id;
    key.user_stack_id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
    key.kernel_stack_id = stacks.get_stackid(ctx, 0);
    counts.atomic_increment(key);
    return 0;
}
