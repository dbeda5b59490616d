// labkit snippet: verifier_unbounded_loop: a deliberate mistake: a loop whose bound the verifier cannot know.
// hook: tracepoint syscalls:sys_enter_write
// min kernel: 5.3 (bounded loops); bpf_probe_read_user needs 5.5
//
// THE VERIFIER REJECTS THIS (lesson 04): the loop runs `count` times, and
// count comes from the caller of write(): anything up to 2^64. The verifier
// proves termination by walking the loop, one iteration after another; each
// test of `i < count` can go both ways, so each walk leaves one more branch to
// explore later. It gives up long before 2^64: when 8192 branches wait
// (BPF_COMPLEXITY_LIMIT_JMP_SEQ: "The sequence of 8193 jumps is too complex."),
// or, for loops with fewer branches, after 1,000,000 simulated instructions
// (BPF_COMPLEXITY_LIMIT_INSNS: "BPF program is too large").
// The fix is a constant bound: solution_04_bounded_loop.c.
#include "labkit.h"

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
    for (u64 i = 0; i < args->count; i++) {      // <-- no bound the verifier can see
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
