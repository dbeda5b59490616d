// labkit snippet: tc_set_ttl: rewrite the TTL of every IPv4 packet that leaves, and fix the header checksum.
// hook: tc egress of one interface; cls_bpf direct-action or tcx
// min kernel: 4.5 (clsact, direct action, bpf_skb_store_bytes, bpf_l3_csum_replace)
//
// The receiver sees the new TTL (IP_RECVTTL). The IPv4 header checksum covers
// the TTL: bpf_l3_csum_replace() updates it for the changed 16-bit word (TTL and
// protocol share one), else the receiver's IP stack drops the packet.
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

#ifndef LK_TTL
#define LK_TTL 7
#endif

#define IP_OFF sizeof(struct ethhdr)
#define TTL_OFF (IP_OFF + __builtin_offsetof(struct iphdr, ttl))
#define CSUM_OFF (IP_OFF + __builtin_offsetof(struct iphdr, check))

BPF_PERCPU_ARRAY(rewritten, u64, 1);

int lk_tc_set_ttl(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;                      // not IPv4: not ours to touch
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return TC_ACT_OK;
    u16 old_word = *(u16 *)&ip->ttl;           // TTL and protocol: one 16-bit word of the checksum
    u8 ttl = LK_TTL;
    if (ip->ttl == ttl)
        return TC_ACT_OK;
    bpf_skb_store_bytes(skb, TTL_OFF, &ttl, 1, 0);
    // after a store the packet pointers are invalid: build the new word from what we know
    u16 new_word = old_word;
    *(u8 *)&new_word = ttl;
    bpf_l3_csum_replace(skb, CSUM_OFF, old_word, new_word, 2);
    rewritten.increment(0);
    return TC_ACT_OK;
}
