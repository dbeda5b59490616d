// labkit snippet: solution_01_threads_by_comm: lesson 01, exercise 2 solved: count only thread creations, per comm.
// hook: tracepoint task:task_newtask
// min kernel: 4.7 (tracepoints + BPF)
//
// The tracepoint's own arguments carry the clone flags; CLONE_THREAD tells a
// new thread from a new process. Compare count_by_comm.c, which counts all
// (and explains the atomic add: threads are created on every CPU at once).
#include "labkit.h"

#define CLONE_THREAD 0x00010000

// as /sys/kernel/tracing/events/task/task_newtask/format lists the fields
struct task_newtask_args {
    u64 common;
    s32 pid;
    char comm[16];
    u64 clone_flags;
    s16 oom_score_adj;
};

struct key_t {
    char comm[16];
};

BPF_HASH(counts, struct key_t, u64, 10240);

int lk_threads_by_comm(struct task_newtask_args *args)
{
    if (!(args->clone_flags & CLONE_THREAD))
        return 0;                                // a process, not a thread
    struct key_t key = {};
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    u64 zero = 0;
    u64 *n = counts.lookup_or_try_init(&key, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);              // atomic: BCC's counts.increment(key) is a plain +=
    return 0;
}
