// labkit snippet: write_sizes: a log2 histogram of the byte counts passed to write(), built in the kernel.
// hook: tracepoint syscalls:sys_enter_write
// min kernel: 4.7 (tracepoints + BPF)
//
// Bucket k counts writes of 2^(k-1) .. 2^k - 1 bytes (bucket 0: empty writes),
// as BCC's print_log2_hist reads it.
// A histogram is a map of counters: one event would be a whole record per
// write, this is one increment. An atomic one: the process's threads may write
// on two CPUs at once and land in the same bucket, and BCC's plain
// sizes.increment() (a load, an add and a store) would then lose one of them.
#include "labkit.h"

struct sys_enter_write_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    u64 fd;
    u64 buf;
    u64 count;
};

BPF_HISTOGRAM(sizes, int, 64);

int lk_write_sizes(struct sys_enter_write_args *args)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!lk_wanted(tgid))
        return 0;
    sizes.atomic_increment(bpf_log2l(args->count));
    return 0;
}
