// labkit snippet: solution_13_cgroup_bytes: lesson 13 q2, bytes received and sent by cgroup LK13_CGROUP's sockets.
// hook: cgroup_skb ingress (lk_13_ingress) and egress (lk_13_egress) of the parent of the checker's cgroups
// min kernel: 5.7 (cgroup bpf_links)
#include <uapi/linux/bpf.h>

#ifndef LK13_CGROUP
#define LK13_CGROUP 0
#endif

BPF_HASH(rx_bytes, u64, u64, 64);
BPF_HASH(tx_bytes, u64, u64, 64);

int lk_13_ingress(struct __sk_buff *skb)
{
    u64 id = bpf_skb_cgroup_id(skb), zero = 0;
    if (id != LK13_CGROUP)
        return 1;
    u64 *n = rx_bytes.lookup_or_try_init(&id, &zero);
    if (n)
        __sync_fetch_and_add(n, skb->len);
    return 1;                                  // 1: let it go (0 would drop it)
}

int lk_13_egress(struct __sk_buff *skb)
{
    u64 id = bpf_skb_cgroup_id(skb), zero = 0;
    if (id != LK13_CGROUP)
        return 1;
    u64 *n = tx_bytes.lookup_or_try_init(&id, &zero);
    if (n)
        __sync_fetch_and_add(n, skb->len);
    return 1;
}
