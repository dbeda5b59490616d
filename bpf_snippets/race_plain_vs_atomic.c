// labkit snippet: race_plain_vs_atomic: one getppid() call counted twice, with a plain += and with an atomic add.
// hook: tracepoint syscalls:sys_exit_getppid
// min kernel: 4.7 (tracepoints + BPF)
//
// Lesson 03 runs getppid() in one process per CPU, at the same time, and
// compares the two counters. Both live in an ordinary (shared) array map:
//  * plain.increment(0) is what BCC writes for it: `(*leaf) += 1`, a load, an
//    add and a store. When two CPUs load the same old value, both store
//    old + 1, and one of the two adds is lost, without any error;
//  * atomic.atomic_increment(0) is one atomic add (__sync_fetch_and_add,
//    BPF_ATOMIC | BPF_ADD): no add is ever lost.
// With one CPU the program's runs never overlap, and the two counts agree.
//
// Only the calls of one process's children count: getppid() answers them with
// that process's id (LK_PARENT_PID), which the exit tracepoint sees as `ret`.
#include "labkit.h"

#ifndef LK_PARENT_PID
#define LK_PARENT_PID 0      // 0: every getppid() call on the machine
#endif

// as /sys/kernel/tracing/events/syscalls/sys_exit_getppid/format lists the fields
struct sys_exit_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    s64 ret;             // what the syscall returned: the caller's parent
};

BPF_ARRAY(plain, u64, 1);
BPF_ARRAY(atomic, u64, 1);

int lk_race(struct sys_exit_args *args)
{
    if (LK_PARENT_PID != 0 && args->ret != LK_PARENT_PID)
        return 0;
    plain.increment(0);              // (*leaf) += 1: can lose adds
    atomic.atomic_increment(0);      // lock xadd: cannot
    return 0;
}
