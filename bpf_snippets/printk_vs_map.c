// labkit snippet: printk_vs_map: one bpf_trace_printk line *and* one exact count per getppid() call.
// hook: tracepoint syscalls:sys_enter_getppid
// min kernel: 4.7 (tracepoints + BPF)
//
// Lesson 01 calls getppid() many times and compares the lines that reach
// trace_pipe with the count in the map: the map is exact, the pipe is not, and
// nothing tells the reader how many lines it lost.
#include "labkit.h"

BPF_ARRAY(calls, u64, 1);

int lk_printk_vs_map(void *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!lk_wanted(tgid))
        return 0;
    int zero = 0;
    u64 *n = calls.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);             // exact: a counter in kernel memory
    bpf_trace_printk("lk-hello getppid by %d\n", tgid);   // best effort: a line of text
    return 0;
}
