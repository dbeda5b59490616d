// labkit snippet: maps_perf_vs_ring: every getppid() of a process's children sent twice, to a perf buffer and to a ring buffer.
// hook: tracepoint syscalls:sys_exit_getppid
// min kernel: 5.8 (BPF ring buffer)
//
// Lesson 06 reads both and compares what they lose, in which order they
// deliver, and what they cost in memory. Each record carries a number taken
// from one counter all CPUs share (an atomic add): the global order of the calls.
// Kernels before 5.12 cannot return the old value of an atomic add (BPF_FETCH
// came in 5.12): there the number is bpf_ktime_get_ns(), which orders the
// calls the same way.
//  * perf_events: a perf buffer, one per CPU. A full CPU buffer drops the
//    record, and the kernel tells the reader how many it dropped;
//  * ring: one ring buffer for all CPUs. A full ring refuses the reservation:
//    the program counts it in ring_lost (nobody else would).
// Only the calls of one process's children count: getppid() answers them with
// that process's id (LK_PARENT_PID), which the exit tracepoint sees as `ret`.
#include "labkit.h"

#ifndef LK_PARENT_PID
#define LK_PARENT_PID 0
#endif
#ifndef LK_RING_PAGES
#define LK_RING_PAGES 16
#endif

struct sys_exit_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    s64 ret;
};

struct event {
    u64 seq;        // global order: one shared atomic counter
    u64 ts;         // bpf_ktime_get_ns()
    u32 cpu;        // the CPU the program ran on
    u32 pid;
};

BPF_PERF_OUTPUT(perf_events);
BPF_RINGBUF_OUTPUT(ring, LK_RING_PAGES);
BPF_ARRAY(seq, u64, 1);
BPF_ARRAY(ring_lost, u64, 1);

int lk_both(struct sys_exit_args *args)
{
    if (LK_PARENT_PID != 0 && args->ret != LK_PARENT_PID)
        return 0;
    u32 zero = 0;
    u64 *next = seq.lookup(&zero);
    if (!next)
        return 0;
    struct event e = {};
    struct event *r = ring.ringbuf_reserve(sizeof(struct event));   // a place in the ring first,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 12, 0)
    e.seq = __sync_fetch_and_add(next, 1);                          // then the number
#else   // no atomic fetch-and-add before 5.12 (the verifier: "BPF_STX uses reserved fields"):
    e.seq = bpf_ktime_get_ns();                                     // the one clock all CPUs share
#endif
    e.ts = bpf_ktime_get_ns();
    e.cpu = bpf_get_smp_processor_id();
    e.pid = bpf_get_current_pid_tgid() >> 32;
    if (r) {
        __builtin_memcpy(r, &e, sizeof(e));
        ring.ringbuf_submit(r, BPF_RB_NO_WAKEUP);   // the reader polls: no wake-up per record
    } else {
        ring_lost.atomic_increment(zero);
    }
    perf_events.perf_submit(args, &e, sizeof(e));
    return 0;
}
