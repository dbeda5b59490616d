// labkit snippet: count_by_comm: process and thread creations counted per (uid, comm) in a hash map.
// hook: tracepoint task:task_newtask (every fork, vfork, clone and clone3)
// min kernel: 4.7 (tracepoints + BPF)
//
// Nothing is sent to user space per event: the kernel keeps one counter per
// key and user space reads the map when it wants (labkit.map_dataframe).
// Counting is exact at any rate; what you lose is the individual events.
#include "labkit.h"

struct key_t {
    u32 uid;             // who (the creator's uid)
    char comm[16];       // and which program (the creator's command name)
};

BPF_HASH(counts, struct key_t, u64, 10240);

int lk_count_by_comm(void *ctx)
{
    struct key_t key = {};
    key.uid = (u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    counts.increment(key);                       // lookup-or-init + atomic add
    return 0;
}
