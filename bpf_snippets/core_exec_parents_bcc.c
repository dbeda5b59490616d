// labkit snippet: core_exec_parents_bcc: for every exec, the parent's process id, read from task_struct the BCC way.
// hook: tracepoint sched:sched_process_exec (lab.attach_tracepoint(prog, "sched:sched_process_exec"))
// min kernel: 4.7 (tracepoints + BPF); needs kernel headers that match the running kernel
//
// BCC compiles this when it runs, with the struct task_struct of the headers
// under /lib/modules/$(uname -r)/build, and turns task->real_parent->tgid into
// two bpf_probe_read_kernel calls at the offsets those headers give. When the
// headers are another kernel's, the offsets are wrong and so is the answer
// (lesson 09 measures it); the CO-RE twin is core_exec_parents.bpf.c.
#include <linux/sched.h>

BPF_HASH(parents, u32, u32, 10240);

int lk_exec_parent(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    u32 ppid = task->real_parent->tgid;
    parents.update(&pid, &ppid);
    return 0;
}
