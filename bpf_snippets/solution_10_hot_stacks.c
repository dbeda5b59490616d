// labkit snippet: solution_10_hot_stacks: lesson 10, exercise solved: CPU-clock samples of one process counted per user stack.
// hook: perf_event (the CPU clock at 99 Hz: lab.attach_perf_event)
// min kernel: 4.9 (BPF_PROG_TYPE_PERF_EVENT, bpf_get_stackid)
//
// The sample belongs to the process when the upper half of
// bpf_get_current_pid_tgid() (the process id, shared by its threads) is
// LK_FILTER_PID. BPF_F_USER_STACK asks for the stack of the process's own code
// (without it, the kernel's: -EFAULT while the CPU runs user code). Two CPUs
// may count the same stack at once: atomic_increment.
#include <uapi/linux/bpf_perf_event.h>
#include "labkit.h"

BPF_STACK_TRACE(stacks, 1024);
BPF_HASH(counts, int, u64, 1024);

int lk_hot_sample(struct bpf_perf_event_data *ctx)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    int stack_id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
    counts.atomic_increment(stack_id);
    return 0;
}
