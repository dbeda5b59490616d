// labkit snippet: maps_kinds: four kinds of map filled past their size, and each kind's cost per update.
// hook: tracepoint syscalls:sys_enter_getpgid (lk_fill), syscalls:sys_enter_getsid (lk_cost)
// min kernel: 5.3 (bounded loops; LRU hash 4.10, per-CPU array 4.6)
//
// Lesson 06 drives both functions from Python with pids that cannot exist
// (LK_KEY_BASE + k, above any pid_max): getpgid(LK_KEY_BASE + k) and
// getsid(LK_KEY_BASE + k) only fail with ESRCH, and the program reads k.
//
// lk_fill (getpgid): k < 100 goes into three maps of 8 entries each:
//  * small_hash, a BPF_HASH: when it is full, an update with a new key fails
//    (-E2BIG) and nothing is stored;
//  * small_lru, an LRU hash: when it is full, an update with a new key
//    evicts the least recently used entries to make room: it never refuses;
//  * small_array, a BPF_ARRAY: its 8 entries exist from the start (zeroed),
//    keys 0..7 only; no key can be added or deleted (k >= 8 fails: -E2BIG).
// refused[0], [1], [2] count the updates each of the three refused.
// k >= 100 adds one to per_cpu[k - 100], a per-CPU array: each CPU adds to its own slot.
//
// lk_cost (getsid): k = 0 hash, 1 LRU hash, 2 array, 3 per-CPU array: 64
// updates of that kind of map (1024 entries), timed with bpf_ktime_get_ns();
// cost_ns[k] and cost_n[k] add up the time and the number of updates.
#include "labkit.h"

#ifndef LK_KEY_BASE
#define LK_KEY_BASE 0x40000000
#endif
#define LK_UPDATES 64

struct getpid_args {           // sys_enter_getpgid and sys_enter_getsid look alike
    u64 common;
    s32 syscall_nr;
    u32 pad;
    u64 pid;
};

BPF_HASH(small_hash, u32, u64, 8);
BPF_TABLE("lru_hash", u32, u64, small_lru, 8);
BPF_ARRAY(small_array, u64, 8);
BPF_ARRAY(refused, u64, 3);          // updates refused: by small_hash, small_lru, small_array
BPF_PERCPU_ARRAY(per_cpu, u64, 8);

BPF_HASH(cost_hash, u32, u64, 1024);
BPF_TABLE("lru_hash", u32, u64, cost_lru, 1024);
BPF_ARRAY(cost_array, u64, 1024);
BPF_PERCPU_ARRAY(cost_percpu, u64, 1024);
BPF_ARRAY(cost_ns, u64, 4);
BPF_ARRAY(cost_n, u64, 4);

int lk_fill(struct getpid_args *args)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u64 k64 = args->pid - LK_KEY_BASE;
    if (k64 >= 200)
        return 0;
    u32 k = k64;
    if (k >= 100) {
        u32 slot = k - 100;
        u64 *v = per_cpu.lookup(&slot);
        if (v)
            *v += 1;                 // this CPU's own copy: no other CPU writes it
        return 0;
    }
    u64 one = 1;
    u32 which = 0;
    if (small_hash.update(&k, &one) != 0)
        refused.atomic_increment(which);
    which = 1;
    if (small_lru.update(&k, &one) != 0)
        refused.atomic_increment(which);
    which = 2;
    if (small_array.update(&k, &one) != 0)   // k >= 8: an array has no such index
        refused.atomic_increment(which);
    return 0;
}

int lk_cost(struct getpid_args *args)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u32 kind = args->pid - LK_KEY_BASE;
    if (kind > 3)
        return 0;
    u64 val = kind;
    u64 t0 = bpf_ktime_get_ns();
    for (u32 i = 0; i < LK_UPDATES; i++) {
        u32 key = i;                 // a copy on the stack: the loop counter keeps its bounds
        if (kind == 0)
            cost_hash.update(&key, &val);
        else if (kind == 1)
            cost_lru.update(&key, &val);
        else if (kind == 2)
            cost_array.update(&key, &val);
        else
            cost_percpu.update(&key, &val);
    }
    u64 dt = bpf_ktime_get_ns() - t0;
    u64 *ns = cost_ns.lookup(&kind);
    if (ns)
        __sync_fetch_and_add(ns, dt);
    cost_n.atomic_increment(kind, LK_UPDATES);
    return 0;
}
