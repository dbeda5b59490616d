// labkit snippet: maps_race: one counter shared by all CPUs, three ways: plain +=, atomic add, per-CPU.
// hook: tracepoint syscalls:sys_exit_getppid
// min kernel: 4.7 (tracepoints + BPF)
//
// Lesson 06 measures what the plain += loses when two CPUs count at once, and
// the two fixes:
//  * plain:   (*v) += 1 on an entry every CPU shares: load, add, store; two
//             CPUs that load the same old value both store old + 1: one add lost;
//  * atomic:  __sync_fetch_and_add(v, 1): one atomic instruction, nothing lost;
//  * per_cpu: a per-CPU array: each CPU adds to its own copy, nothing to race
//             for; the total is the sum of the copies (user space adds them).
// Only the calls of one process's children count: getppid() answers them with
// that process's id (LK_PARENT_PID), which the exit tracepoint sees as `ret`.
#include "labkit.h"

#ifndef LK_PARENT_PID
#define LK_PARENT_PID 0
#endif

struct sys_exit_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    s64 ret;
};

BPF_ARRAY(plain, u64, 1);
BPF_ARRAY(atomic, u64, 1);
BPF_PERCPU_ARRAY(per_cpu, u64, 1);

int lk_race3(struct sys_exit_args *args)
{
    if (LK_PARENT_PID != 0 && args->ret != LK_PARENT_PID)
        return 0;
    u32 zero = 0;
    u64 *v = plain.lookup(&zero);
    if (v)
        *v += 1;                        // shared: can lose adds
    v = atomic.lookup(&zero);
    if (v)
        __sync_fetch_and_add(v, 1);     // shared, atomic: cannot
    v = per_cpu.lookup(&zero);
    if (v)
        *v += 1;                        // this CPU's own copy: cannot
    return 0;
}
