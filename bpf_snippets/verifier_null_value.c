// labkit snippet: verifier_null_value: a deliberate mistake: using a map lookup's result without a NULL check.
// hook: tracepoint syscalls:sys_enter_getppid
// min kernel: 4.7 (tracepoints + BPF)
//
// THE VERIFIER REJECTS THIS (lesson 04): lookup returns NULL when the key is
// not in the map, so its result is "map_value_or_null" until the program
// compares it with NULL. Dereferencing it before that is refused.
#include "labkit.h"

BPF_HASH(counts, u32, u64);

int lk_null_value(void *ctx)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    u64 *n = counts.lookup(&pid);
    *n += 1;                           // missing: if (!n) { ...insert...; return 0; }
    return 0;
}
