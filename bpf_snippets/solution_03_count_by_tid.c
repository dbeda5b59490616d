// labkit snippet: solution_03_count_by_tid: lesson 03, exercise solved: getppid() calls per thread, in a hash map.
// hook: tracepoint syscalls:sys_enter_getppid
// min kernel: 4.7 (tracepoints + BPF)
//
// bpf_get_current_pid_tgid() returns tgid << 32 | tid: the upper half is what
// user space calls the process id, the lower half the thread id.
//
// BCC's counts.increment(tid) is a plain `+=` (load, add, store), not an atomic
// add. It is exact here because each key has a single writer: a thread runs on
// one CPU at a time, so two updates of the same thread's counter never overlap.
// A key that several CPUs update at once needs an atomic add: lesson 03 shows
// a plain `+=` losing counts there.
#include "labkit.h"

BPF_HASH(counts, u32, u64, 10240);   // thread id -> calls

int lk_count_by_tid(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = (u32)id;
    counts.increment(tid);
    return 0;
}
