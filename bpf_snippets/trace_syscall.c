// labkit snippet: trace_syscall: one event per entry into a chosen syscall.
// hook: tracepoint syscalls:sys_enter_<name> (CONFIG_FTRACE_SYSCALLS); the same
//       program serves every syscall because their enter tracepoints share a layout.
// min kernel: 5.8 (BPF ring buffer)
#include "labkit.h"

// How many arguments this syscall has (labkit reads it from the format file):
// the kernel refuses to attach a program that reads past the tracepoint's record.
#ifndef LK_NARGS
#define LK_NARGS 6
#endif

// The layout of every syscalls:sys_enter_* tracepoint (see its format file).
struct sys_enter_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    u64 args[6];
};

struct syscall_event {
    u64 ts;
    u32 pid;
    u32 tid;
    u32 uid;
    s32 nr;              // syscall number
    u64 args[6];         // raw arguments (pointers are addresses in the caller)
    char comm[16];
};

BPF_RINGBUF_OUTPUT(events, LK_RINGBUF_PAGES);  // events to user space
BPF_PERCPU_ARRAY(lost, u64, 1);                 // reservations that found no room

int lk_sys_enter(struct sys_enter_args *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (!lk_wanted(tgid))
        return 0;
    struct syscall_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        lost.increment(0);              // counted, never silent
        return 0;
    }
    e->ts = bpf_ktime_get_ns();
    e->pid = tgid;
    e->tid = (u32)id;
    e->uid = (u32)bpf_get_current_uid_gid();
    e->nr = ctx->syscall_nr;
#pragma unroll
    for (int i = 0; i < 6; i++)
        e->args[i] = i < LK_NARGS ? ctx->args[i] : 0;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}
