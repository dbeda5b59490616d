// labkit snippet: perf_cpu_samples: where the CPU time goes, counted as CPU-clock samples per process.
// hook: perf_event (the software CPU clock, sampled at a frequency on every CPU: lab.attach_perf_event)
// min kernel: 4.9 (BPF_PROG_TYPE_PERF_EVENT)
//
// The kernel's CPU clock interrupts each CPU `frequency` times a second and
// runs lk_sample in whatever was running there: a process that kept a CPU
// busy for a second at 99 Hz collects about 99 samples. Samples that land in
// the idle task (pid 0) say the CPU had nothing to do, and are counted too.
// samples[pid] is summed over the CPUs when it is read (a per-CPU hash: each
// CPU adds to its own copy, so a plain add is exact); `missed` counts the
// samples of processes that found the map full.
#include "labkit.h"

// The context is never read here, so a declaration of its type is enough: its
// definition (#include <uapi/linux/bpf_perf_event.h>, for ctx->regs) brings in
// the kernel's register layout, and compiling that takes a second of CPU.
struct bpf_perf_event_data;

BPF_PERCPU_HASH(samples, u32, u64, 10240);
BPF_PERCPU_ARRAY(missed, u64, 1);

int lk_sample(struct bpf_perf_event_data *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!lk_wanted(tgid))
        return 0;
    u64 zero = 0;
    u64 *n = samples.lookup_or_try_init(&tgid, &zero);
    if (n)
        (*n)++;
    else
        missed.increment(0);
    return 0;
}
