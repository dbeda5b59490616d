// labkit snippet: solution_09_exit_codes: lesson 09, exercise q2 solved: each process's exit code, read from task_struct.
// hook: tracepoint sched:sched_process_exit, as SEC("tracepoint/sched/sched_process_exit") (CO-RE: lab.load_object)
// min kernel: 5.4 (kernel BTF)
//
// do_exit() stores the code in task->exit_code (status << 8 | signal) before
// sched_process_exit fires; the tracepoint's own fields do not carry it. Every
// thread passes here; keyed by the process id, the last one's code stays (all
// threads of a process that exits as a group carry the group's code).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, u32);
    __type(value, u32);
} exit_codes SEC(".maps");

SEC("tracepoint/sched/sched_process_exit")
int lk_exit_code(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u32 pid = BPF_CORE_READ(task, tgid);
    u32 code = BPF_CORE_READ(task, exit_code);
    bpf_map_update_elem(&exit_codes, &pid, &code, BPF_ANY);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
