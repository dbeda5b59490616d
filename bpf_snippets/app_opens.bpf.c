// labkit snippet: app_opens: the BPF half of lesson 14's libbpf application: every file one process opens, with its depth.
// hook: tracepoint syscalls:sys_enter_openat, as SEC("tracepoint/syscalls/sys_enter_openat") (CO-RE: its user space is bpf_snippets/apps/app_opens.c)
// min kernel: 5.8 (ring buffer; the stage that counts with bpf_loop: 5.17, left out where the kernel lacks it)
//
// What the user space does with it (apps/app_opens.c, through the skeleton that
// `bpftool gen skeleton` makes of this object): it sets target_tgid, a
// read-only global, before load (skel->rodata->target_tgid = pid: the value is
// part of the program the verifier sees, where BCC would recompile with -D);
// it loads lk_depth only if the kernel has bpf_loop, and then puts it in slot 0
// of the prog array `stages`; it reads `events`, a ring buffer, and prints each
// record; `opens` is pinned by name in the pin root it is given, so a second run,
// bpftool, or any program with the rights reads (and goes on with) the count.
//
// lk_openat fills this CPU's scratch record, then tail-calls stage 0: a jump
// that does not come back (lk_depth counts the '/' of the path with bpf_loop
// and submits the record). With slot 0 empty the tail call does not jump and
// lk_openat goes on: it submits the record itself, depth -1 (not counted).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define NAME_LEN 256

const volatile __u32 target_tgid = 0;   // set by user space before load (__u32: the skeleton names its type)

struct event {
    u32 pid;
    u32 tid;
    s32 depth;                           // '/' in the path, -1 when no stage counted them
    u32 stage;                           // 1 when lk_depth (the tail call's target) submitted it
    char comm[16];
    char filename[NAME_LEN];
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
    __uint(pinning, LIBBPF_PIN_BY_NAME);   // <pin root>/opens: made by the first load, reused by the next
} opens SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct event);
} scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u32);
} stages SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int lk_openat(struct trace_event_raw_sys_enter *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (id >> 32 != target_tgid)
        return 0;
    u32 zero = 0;
    u64 *n = bpf_map_lookup_elem(&opens, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    struct event *e = bpf_map_lookup_elem(&scratch, &zero);
    if (!e)
        return 0;
    e->pid = id >> 32;
    e->tid = (u32)id;
    e->depth = -1;
    e->stage = 0;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    bpf_probe_read_user_str(e->filename, sizeof(e->filename), (const char *)ctx->args[1]);
    bpf_tail_call(ctx, &stages, 0);
    // still here: slot 0 is empty (this kernel has no bpf_loop), submit without the depth
    bpf_ringbuf_output(&events, e, sizeof(*e), 0);
    return 0;
}

static long lk_count_slash(u32 i, void *depth)
{
    u32 zero = 0;
    struct event *e = bpf_map_lookup_elem(&scratch, &zero);
    if (!e)
        return 1;                        // 1: stop the loop
    char c = e->filename[i & (NAME_LEN - 1)];
    if (c == 0)
        return 1;
    if (c == '/')
        *(s32 *)depth += 1;
    return 0;                            // 0: next iteration
}

SEC("tracepoint")                        // no target: only ever reached by a tail call
int lk_depth(void *ctx)
{
    u32 zero = 0;
    struct event *e = bpf_map_lookup_elem(&scratch, &zero);
    if (!e)
        return 0;
    s32 depth = 0;
    // up to NAME_LEN iterations, however many the verifier would have to walk: the kernel runs the loop
    bpf_loop(NAME_LEN, lk_count_slash, &depth, 0);
    e->depth = depth;
    e->stage = 1;
    bpf_ringbuf_output(&events, e, sizeof(*e), 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
