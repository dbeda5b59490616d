// labkit snippet: solution_04_bounded_loop: lesson 04, exercise 2 solved: the loop gets a constant bound.
// hook: tracepoint syscalls:sys_enter_write
// min kernel: 5.3 (bounded loops); bpf_probe_read_user needs 5.5
//
// Compare verifier_unbounded_loop.c: `i < MAX_BYTES` caps the loop at 64
// iterations whatever count is, so the verifier can walk it to the end. Only
// the first 64 bytes of each write are looked at: say so where it matters.
#include "labkit.h"

#define MAX_BYTES 64

struct sys_enter_write_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    u64 fd;
    u64 buf;
    u64 count;
};

BPF_HASH(newlines, u32, u64);        // per file descriptor: how many '\n' were written

int lk_count_newlines(struct sys_enter_write_args *args)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!lk_wanted(tgid))
        return 0;
    const char *buf = (const char *)args->buf;
    u64 n = 0;
    for (u64 i = 0; i < args->count && i < MAX_BYTES; i++) {
        char c = 0;
        bpf_probe_read_user(&c, 1, buf + i);
        if (c == '\n')
            n++;
    }
    u32 fd = args->fd;
    u64 zero = 0;
    u64 *total = newlines.lookup_or_try_init(&fd, &zero);
    if (total)
        __sync_fetch_and_add(total, n);
    return 0;
}
