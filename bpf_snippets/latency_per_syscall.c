// labkit snippet: latency_per_syscall: every syscall of the watched processes timed, as one log2
// histogram of microseconds per process and syscall.
// hook: tracepoints raw_syscalls:sys_enter, raw_syscalls:sys_exit (every syscall; Lab.load attaches them)
// min kernel: 4.7
//
// The processes to watch are the keys of `watched`, written from user space
// (prog["watched"][ctypes.c_uint32(pid)] = ctypes.c_uint8(1)): a tracepoint runs for every process, so
// the program asks the map on each call. The entry notes the syscall's number and the time under the
// thread id (a thread is in one syscall at a time); the exit files the difference under
// (process, syscall, bucket).
#include "labkit.h"

struct lk_call { u64 start; u32 nr; };
struct lk_key { u32 pid; u32 nr; u32 bucket; };

BPF_HASH(watched, u32, u8, 64);               // the processes to time (user space fills it)
BPF_HASH(inflight, u32, struct lk_call, 10240);   // thread id -> the syscall it is in, since when
BPF_HASH(latency, struct lk_key, u64, 4096);  // (process, syscall, log2 us) -> calls

TRACEPOINT_PROBE(raw_syscalls, sys_enter)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 pid = id >> 32, tid = id;
    if (!watched.lookup(&pid))
        return 0;
    struct lk_call call = {.start = bpf_ktime_get_ns(), .nr = args->id};
    inflight.update(&tid, &call);
    return 0;
}

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = id;
    struct lk_call *call = inflight.lookup(&tid);
    if (!call)
        return 0;
    struct lk_key key = {.pid = id >> 32, .nr = call->nr,
                         .bucket = bpf_log2l((bpf_ktime_get_ns() - call->start) / 1000)};
    u64 zero = 0, *n = latency.lookup_or_try_init(&key, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    inflight.delete(&tid);
    return 0;
}
