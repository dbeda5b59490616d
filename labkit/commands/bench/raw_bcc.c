// labkit bench, method "bcc": what a user writes with BCC: one event per getppid() of one
// process, to a ring buffer, decoded in Python by a per-event callback.
// hook: tracepoint syscalls:sys_enter_getppid; min kernel: 5.8 (BPF ring buffer)
// -D FILTER_PID: the load generator's pid; -D RING_PAGES: the ring buffer's size in pages.
// struct event has the layout of labkit.events.schemas.SYSCALL_DTYPE (same bytes as labkit's stream).
struct sys_enter_args { u64 common; s32 syscall_nr; u32 pad; u64 args[6]; };
struct event {
    u64 ts;
    u32 pid;
    u32 tid;
    u32 uid;
    s32 nr;
    u64 args[6];
    char comm[16];
};
BPF_RINGBUF_OUTPUT(events, RING_PAGES);
BPF_PERCPU_ARRAY(lost, u64, 1);

int lk_bench_bcc(struct sys_enter_args *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if ((u32)(id >> 32) != FILTER_PID)
        return 0;
    struct event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        lost.increment(0);
        return 0;
    }
    e->ts = bpf_ktime_get_ns();
    e->pid = id >> 32;
    e->tid = (u32)id;
    e->uid = (u32)bpf_get_current_uid_gid();
    e->nr = ctx->syscall_nr;
    __builtin_memset(e->args, 0, sizeof(e->args));
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    events.ringbuf_submit(e, 0);
    return 0;
}
