// labkit snippet: cgroup_skb_bytes: count the packets and bytes each cgroup's sockets receive and send.
// hook: cgroup_skb ingress (lk_cgroup_ingress) and egress (lk_cgroup_egress) of one cgroup v2 directory
// min kernel: 5.7 (cgroup bpf_links; cgroup_skb programs themselves since 4.10)
//
// A cgroup_skb program sees the IP packet (skb->len counts from the IP header
// on) of every socket in its cgroup or below it; bpf_skb_cgroup_id() says
// whose socket it is: the cgroup id, the number labkit.Cgroup(...).id gives.
// Returning 1 lets the packet go; 0 would drop it.
#include <uapi/linux/bpf.h>

struct counter {
    u64 packets;
    u64 bytes;
};

BPF_HASH(ingress, u64, struct counter, 256);
BPF_HASH(egress, u64, struct counter, 256);

static __always_inline void count(struct counter *c, struct __sk_buff *skb)
{
    if (!c)
        return;
    __sync_fetch_and_add(&c->packets, 1);
    __sync_fetch_and_add(&c->bytes, skb->len);
}

int lk_cgroup_ingress(struct __sk_buff *skb)
{
    u64 id = bpf_skb_cgroup_id(skb);
    struct counter zero = {};
    count(ingress.lookup_or_try_init(&id, &zero), skb);
    return 1;
}

int lk_cgroup_egress(struct __sk_buff *skb)
{
    u64 id = bpf_skb_cgroup_id(skb);
    struct counter zero = {};
    count(egress.lookup_or_try_init(&id, &zero), skb);
    return 1;
}
