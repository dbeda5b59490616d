// labkit snippet: solution_09_execs_by_parent: lesson 09, exercise q1 solved: execs counted per parent process, CO-RE.
// hook: tracepoint sched:sched_process_exec, as SEC("tracepoint/sched/sched_process_exec") (CO-RE: lab.load_object)
// min kernel: 5.4 (kernel BTF)
//
// sched_process_exec fires once per successful exec, in the task that exec'ed.
// Its parent is task->real_parent (the thread that forked it); that thread's
// process id is ->tgid. Two CPUs may count for the same parent: atomic add.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, u32);
    __type(value, u64);
} execs SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int lk_count_exec(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u32 parent = BPF_CORE_READ(task, real_parent, tgid);
    u64 one = 1, *count = bpf_map_lookup_elem(&execs, &parent);
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bpf_map_update_elem(&execs, &parent, &one, BPF_NOEXIST);   // a racing first update: see the hint
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
