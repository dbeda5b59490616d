// labkit bench, method "printk": the classic, bpf_trace_printk read back from trace_pipe.
// hook: tracepoint syscalls:sys_enter_getppid
// -D FILTER_PID: the load generator's pid; -D NONCE: marks this run's lines in trace_pipe.
int lk_bench_printk(void *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (tgid != FILTER_PID)
        return 0;
    bpf_trace_printk("lkbench %u %u\n", NONCE, tgid);
    return 0;
}
