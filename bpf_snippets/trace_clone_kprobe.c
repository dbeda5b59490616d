// labkit snippet: trace_clone_kprobe: process and thread creations via kprobes.
// hook: kprobe + kretprobe on kernel_clone (kernel >= 5.10; _do_fork before),
//       which every fork, vfork, clone and clone3 goes through. Needs a kernel
//       built with CONFIG_KPROBES (distro kernels are; some cloud kernels not).
// min kernel: 5.10 (kernel_clone, BPF ring buffer)
#include <uapi/linux/ptrace.h>
#include "labkit.h"

struct clone_event {
    u64 ts;
    u32 pid;
    u32 tid;
    u32 child_pid;
    u32 uid;
    u64 flags;
    char comm[16];
};

BPF_RINGBUF_OUTPUT(events, LK_RINGBUF_PAGES);  // events to user space
BPF_PERCPU_ARRAY(lost, u64, 1);                 // events that never arrive: no room, or a missed return

// clone flags seen on entry, by creator thread, until the return probe fires
BPF_HASH(inflight, u32, u64, 4096);

// kernel_clone(struct kernel_clone_args *args): `flags` is the struct's first member
int lk_clone_entry(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = (u32)id;
    u64 flags = 0;
    bpf_probe_read_kernel(&flags, sizeof(flags), (void *)PT_REGS_PARM1(ctx));
    // A kretprobe can miss a return (more calls in flight than its maxactive
    // slots): then this thread's last entry is still here, and that creation
    // never became an event. Count it as lost, like a full ring buffer.
    int zero = 0;
    u64 *missed = lost.lookup(&zero);
    if (inflight.lookup(&tid) && missed)
        (*missed)++;                    // per-CPU: no other CPU writes this slot
    if (inflight.update(&tid, &flags) != 0 && missed)
        (*missed)++;                    // no room to remember it: its event will be missing too
    return 0;
}

int lk_clone_ret(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u64 *flags = inflight.lookup(&tid);
    if (!flags)
        return 0;
    long child = PT_REGS_RC(ctx);
    u64 f = *flags;
    inflight.delete(&tid);
    if (child <= 0)
        return 0;                       // clone failed: nothing was created
    struct clone_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        lost.increment(0);              // counted, never silent
        return 0;
    }
    e->ts = bpf_ktime_get_ns();
    e->pid = id >> 32;
    e->tid = tid;
    e->child_pid = (u32)child;
    e->uid = (u32)bpf_get_current_uid_gid();
    e->flags = f;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}
