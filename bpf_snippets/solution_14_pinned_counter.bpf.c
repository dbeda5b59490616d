// labkit snippet: solution_14_pinned_counter: lesson 14, exercise q2 solved: a counter pinned by name, reused by the next load.
// hook: tracepoint syscalls:sys_exit_getppid, as SEC("tracepoint/syscalls/sys_exit_getppid") (CO-RE: lab.load_object)
// min kernel: 5.4 (kernel BTF; pinning by name: libbpf)
//
// `calls` is pinned by libbpf as <pin root>/calls when the object is loaded;
// the next load with the same pin root finds the pin and reuses that map, so
// the count goes on where the first run left it. parent_pid is a read-only
// global the loader sets before load (skel->rodata->parent_pid, or
// rodata={"parent_pid": ...}): only getppid() calls that returned it count.
// Two CPUs count at once: an atomic add.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile u32 parent_pid = 0;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} calls SEC(".maps");

struct sys_exit_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    s64 ret;
};

SEC("tracepoint/syscalls/sys_exit_getppid")
int lk_count_calls(struct sys_exit_args *args)
{
    if (args->ret != parent_pid)
        return 0;
    u32 zero = 0;
    u64 *n = bpf_map_lookup_elem(&calls, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
