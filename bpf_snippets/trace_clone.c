// labkit snippet: trace_clone: one event per process or thread creation.
// hook: tracepoint task:task_newtask (fires in copy_process for fork, vfork,
//       clone and clone3 alike; the current task is the creator)
// min kernel: 5.8 (BPF ring buffer)
#include "labkit.h"

// The tracepoint's arguments, as /sys/kernel/tracing/events/task/task_newtask/format lists them.
struct task_newtask_args {
    u64 common;          // common_type, common_flags, common_preempt_count, common_pid
    s32 pid;             // the new task's id (a thread id for a thread)
    char comm[16];
    u64 clone_flags;     // CLONE_THREAD, CLONE_VFORK, ... tell threads from processes
    s16 oom_score_adj;
};

struct clone_event {
    u64 ts;              // bpf_ktime_get_ns(): CLOCK_MONOTONIC
    u32 pid;             // creator's process id (tgid)
    u32 tid;             // creator's thread id
    u32 child_pid;       // id of the new task
    u32 uid;
    u64 flags;           // clone flags
    char comm[16];       // creator's command name
};

BPF_RINGBUF_OUTPUT(events, LK_RINGBUF_PAGES);  // events to user space
BPF_PERCPU_ARRAY(lost, u64, 1);                 // reservations that found no room

int lk_clone_tp(struct task_newtask_args *args)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (!lk_wanted(tgid))
        return 0;
    struct clone_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        lost.increment(0);              // counted, never silent
        return 0;
    }
    e->ts = bpf_ktime_get_ns();
    e->pid = tgid;
    e->tid = (u32)id;
    e->child_pid = args->pid;
    e->uid = (u32)bpf_get_current_uid_gid();
    e->flags = args->clone_flags;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}
