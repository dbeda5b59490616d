// labkit snippet: latency_syscall_check: lesson 11 q2's control. How long the clock_nanosleep() calls of
// the process LK_FILTER_PID take, measured the right way and the ways students get it wrong, side by side
// on the same calls, each as a log2 histogram of microseconds; and that process's poll() calls (another
// syscall), timed the right way.
// hook: tracepoints syscalls:sys_enter_clock_nanosleep, sys_exit_clock_nanosleep (attached by lab.load);
//       lk_poll_enter, lk_poll_exit: the checker attaches them to sys_enter_poll/sys_exit_poll (ppoll where
//       the kernel has no poll(): arm64)
// min kernel: 4.7
//
//   right     keyed by thread id, only the process LK_FILTER_PID (its tgid)
//   bypid     keyed by the process id: two threads sleeping at once overwrite each other's start
//   main      only the thread whose id is LK_FILTER_PID (the main thread): the filter on the thread id
//   all       every process of the machine
//   poll      the process's poll() calls, keyed by thread id
#include "labkit.h"

BPF_HASH(s_right, u32, u64, 10240);
BPF_HASH(s_bypid, u32, u64, 10240);
BPF_HASH(s_main, u32, u64, 10240);
BPF_HASH(s_all, u32, u64, 10240);
BPF_HASH(s_poll, u32, u64, 10240);
BPF_HISTOGRAM(h_right, int, 64);
BPF_HISTOGRAM(h_bypid, int, 64);
BPF_HISTOGRAM(h_main, int, 64);
BPF_HISTOGRAM(h_all, int, 64);
BPF_HISTOGRAM(h_poll, int, 64);

TRACEPOINT_PROBE(syscalls, sys_enter_clock_nanosleep)
{
    u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns();
    u32 tid = id, tgid = id >> 32;
    s_all.update(&tid, &now);
    if ((u32)id == LK_FILTER_PID)
        s_main.update(&tid, &now);
    if (tgid != LK_FILTER_PID)
        return 0;
    s_right.update(&tid, &now);
    s_bypid.update(&tgid, &now);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_clock_nanosleep)
{
    u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns();
    u32 tid = id, tgid = id >> 32;
    u64 *t0;   // each start, looked up, counted and deleted (BCC's map calls cannot sit in a macro)
    t0 = s_all.lookup(&tid);
    if (t0) {
        h_all.atomic_increment(bpf_log2l((now - *t0) / 1000));
        s_all.delete(&tid);
    }
    t0 = s_main.lookup(&tid);
    if (t0) {
        h_main.atomic_increment(bpf_log2l((now - *t0) / 1000));
        s_main.delete(&tid);
    }
    t0 = s_right.lookup(&tid);
    if (t0) {
        h_right.atomic_increment(bpf_log2l((now - *t0) / 1000));
        s_right.delete(&tid);
    }
    t0 = s_bypid.lookup(&tgid);
    if (t0) {
        h_bypid.atomic_increment(bpf_log2l((now - *t0) / 1000));
        s_bypid.delete(&tgid);
    }
    return 0;
}

int lk_poll_enter(void *args)
{
    u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns();
    u32 tid = id;
    if ((id >> 32) == LK_FILTER_PID)
        s_poll.update(&tid, &now);
    return 0;
}

int lk_poll_exit(void *args)
{
    u32 tid = bpf_get_current_pid_tgid();
    u64 now = bpf_ktime_get_ns();
    u64 *t0;
    t0 = s_poll.lookup(&tid);
    if (t0) {
        h_poll.atomic_increment(bpf_log2l((now - *t0) / 1000));
        s_poll.delete(&tid);
    }
    return 0;
}
