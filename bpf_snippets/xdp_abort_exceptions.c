// labkit snippet: xdp_abort_exceptions: count the kernel's exception events of one program (lesson 07).
// hook: tracepoint (the kernel's exception event for express-data-path programs: lab.attach_tracepoint)
// min kernel: 4.13 (the tracepoint with prog_id)
//
// The tracepoint xdp:xdp_exception fires machine-wide whenever an XDP program
// returns XDP_ABORTED (or an action the driver cannot carry out, such as an
// XDP_TX that fails). Other programs on other interfaces fire it too, so the
// program keeps only its own: LK_PROG_ID is the id of the XDP program to
// watch (0: every one). It counts events by action (0 = XDP_ABORTED,
// 3 = XDP_TX, 4 = XDP_REDIRECT) and keeps the last ifindex seen.
#ifndef LK_PROG_ID
#define LK_PROG_ID 0
#endif

// the tracepoint's record (/sys/kernel/tracing/events/xdp/xdp_exception/format)
struct xdp_exception_args {
    u64 common;                   // type, flags, preempt count, pid
    int prog_id;
    u32 act;
    int ifindex;
};

BPF_HASH(exceptions, u32, u64, 8);        // action -> how many
BPF_ARRAY(last_ifindex, u32, 1);

int lk_xdp_exception(struct xdp_exception_args *args)
{
    if (LK_PROG_ID != 0 && args->prog_id != LK_PROG_ID)
        return 0;
    u32 act = args->act;
    exceptions.atomic_increment(act);
    u32 zero = 0, ifindex = args->ifindex;
    last_ifindex.update(&zero, &ifindex);
    return 0;
}
