// labkit snippet: tc_count: count every packet by protocol at a TC hook, and let it go on (TC_ACT_OK).
// hook: tc on one side (ingress or egress) of one interface; cls_bpf direct-action or tcx
// min kernel: 4.5 (clsact, direct action); 6.6 for tcx links (detach when their process dies)
//
// A TC program gets a struct __sk_buff *: the kernel has already made an skb
// (XDP runs before that, on arrival only). The same program counts what enters
// (ingress) or what leaves (egress). Counters are exact: a per-CPU array indexed
// by (verdict, protocol) with packets and bytes, as labkit's XDP snippets keep.
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>

#define P_OTHER 0
#define P_ARP 1
#define P_ICMP 2
#define P_ICMPV6 3
#define P_UDP 4
#define P_TCP 5
#define P_IPV4 6
#define P_IPV6 7
#define N_PROTO 8

struct counter {
    u64 packets;
    u64 bytes;
};

BPF_PERCPU_ARRAY(counters, struct counter, 8 * N_PROTO);   // index: verdict * N_PROTO + protocol

static __always_inline u8 l4_class(u8 ip_proto, u8 icmp, u8 other)
{
    if (ip_proto == IPPROTO_UDP)
        return P_UDP;
    if (ip_proto == IPPROTO_TCP)
        return P_TCP;
    if (ip_proto == icmp)
        return other == P_IPV4 ? P_ICMP : P_ICMPV6;
    return other;
}

int lk_tc_count(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    u8 proto = P_OTHER;
    int verdict = TC_ACT_OK;

    if ((void *)(eth + 1) <= data_end) {
        u16 ethertype = bpf_ntohs(eth->h_proto);
        if (ethertype == ETH_P_ARP) {
            proto = P_ARP;
        } else if (ethertype == ETH_P_IP) {
            struct iphdr *ip = (void *)(eth + 1);
            proto = P_IPV4;
            if ((void *)(ip + 1) <= data_end)
                proto = l4_class(ip->protocol, IPPROTO_ICMP, P_IPV4);
        } else if (ethertype == ETH_P_IPV6) {
            struct ipv6hdr *ip6 = (void *)(eth + 1);
            proto = P_IPV6;
            if ((void *)(ip6 + 1) <= data_end)
                proto = l4_class(ip6->nexthdr, IPPROTO_ICMPV6, P_IPV6);
        }
    }
    u32 idx = verdict * N_PROTO + proto;
    struct counter *c = counters.lookup(&idx);
    if (c) {
        c->packets += 1;              // per-CPU: exact without atomics
        c->bytes += skb->len;
    }
    return verdict;
}
