// labkit snippet: core_exec_parents: for every exec, the parent's process id, read from the kernel's task_struct the CO-RE way.
// hook: tracepoint sched:sched_process_exec, as SEC("tracepoint/sched/sched_process_exec") (CO-RE: clang + libbpf, lab.load_object)
// min kernel: 5.4 (kernel BTF at /sys/kernel/btf/vmlinux)
//
// clang compiles this once; BPF_CORE_READ records each field access
// (task->real_parent, then ->tgid) as a relocation that libbpf resolves against
// the BTF of the kernel that loads it: the offsets are the running kernel's own.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 10240);
    __type(key, u32);       // the process that exec'ed (its pid)
    __type(value, u32);     // its parent's pid, from task->real_parent->tgid
} parents SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int lk_exec_parent(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    u32 ppid = BPF_CORE_READ(task, real_parent, tgid);
    bpf_map_update_elem(&parents, &pid, &ppid, BPF_ANY);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
