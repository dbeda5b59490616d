// labkit snippet: hello_clone_classic: the classic first BCC program, as tutorials write it.
// hook: kprobe on the clone syscall's kernel entry (__x64_sys_clone on x86-64);
//       needs a kernel built with CONFIG_KPROBES (lesson 01 shows what happens without)
// min kernel: 4.1 (kprobes + BPF); output goes to the shared /sys/kernel/tracing/trace_pipe
//
// Three things are wrong with it, on purpose (lesson 01):
//  * clone is one of four syscalls that create tasks: Python's subprocess
//    calls vfork (posix_spawn would use clone with CLONE_VFORK), threads use
//    clone3; this probe misses both;
//  * kprobes are not on every kernel (this lab's CI kernel has none);
//  * bpf_trace_printk writes text into one pipe shared by the whole machine,
//    which drops lines, silently, when nobody reads fast enough.
// The labkit way is trace_clone.c: a tracepoint every creation passes through,
// and a ring buffer whose losses are counted.

int lk_hello(void *ctx)
{
    u32 uid = bpf_get_current_uid_gid();          // the low 32 bits are the uid
    bpf_trace_printk("clone by uid %d\n", uid);
    return 0;
}
