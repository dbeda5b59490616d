// labkit snippet: count_by_comm: process and thread creations counted per (uid, comm) in a hash map.
// hook: tracepoint task:task_newtask (every fork, vfork, clone and clone3)
// min kernel: 4.7 (tracepoints + BPF)
//
// Nothing is sent to user space per event: the kernel keeps one counter per
// key and user space reads the map when it wants (labkit.map_dataframe).
// What you lose is the individual events. The counts are exact because
//  * the add is atomic: creations run on every CPU at once, and a plain `+=`
//    (which is what BCC's counts.increment(key) compiles to) is a load, an add
//    and a store that two CPUs can interleave, losing one of the two adds;
//  * a new key is inserted with BPF_NOEXIST and looked up again: when two CPUs
//    insert the same key at once, the loser adds to the winner's entry;
//  * a full map (10240 keys) refuses new keys, and that is counted in `missed`
//    instead of being dropped without a word.
#include "labkit.h"

struct key_t {
    u32 uid;             // who (the creator's uid)
    char comm[16];       // and which program (the creator's command name)
};

BPF_HASH(counts, struct key_t, u64, 10240);
BPF_PERCPU_ARRAY(missed, u64, 1);    // creations not counted: the map was full

int lk_count_by_comm(void *ctx)
{
    struct key_t key = {};
    key.uid = (u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    u64 zero = 0;
    u64 *n = counts.lookup_or_try_init(&key, &zero);   // the key's counter, inserted at 0 if new
    if (n)
        __sync_fetch_and_add(n, 1);                  // one atomic add: exact on any number of CPUs
    else
        missed.increment(0);                         // per-CPU: a plain add is exact there
    return 0;
}
