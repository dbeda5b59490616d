// labkit snippet: solution_06_recent_lru: lesson 06 q2, the newest pids asked about, in an LRU hash of 8.
// hook: tracepoint syscalls:sys_enter_getpgid
// min kernel: 4.10 (LRU hash)
#include "labkit.h"

struct getpgid_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    u64 pid;             // the pid asked about
};

BPF_TABLE("lru_hash", u32, u64, recent, 8);   // full: evicts the least recently used, never refuses

int lk_recent(struct getpgid_args *args)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u32 pid = args->pid;
    u64 zero = 0;
    u64 *n = recent.lookup_or_try_init(&pid, &zero);   // inserts 0 when the pid is new (evicting if full)
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}
