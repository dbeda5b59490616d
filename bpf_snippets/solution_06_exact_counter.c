// labkit snippet: solution_06_exact_counter: lesson 06 q1, a counter two CPUs share, counted exactly.
// hook: tracepoint syscalls:sys_exit_getppid
// min kernel: 4.7 (tracepoints + BPF)
#include "labkit.h"

#ifndef LK_PARENT_PID
#define LK_PARENT_PID 0
#endif

struct sys_exit_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    s64 ret;             // the caller's parent
};

BPF_ARRAY(count, u64, 1);

int lk_exact(struct sys_exit_args *args)
{
    if (args->ret != LK_PARENT_PID)
        return 0;
    u32 zero = 0;
    u64 *v = count.lookup(&zero);
    if (v)
        __sync_fetch_and_add(v, 1);      // one atomic add: two CPUs never lose one
    return 0;
}
