// labkit snippet: solution_08_set_dscp: lesson 08 q2, DSCP 46 (EF) on every IPv4 packet that leaves, ECN kept, checksum right.
// hook: tc egress of one interface; cls_bpf direct-action or tcx
// min kernel: 4.5 (clsact, direct action, bpf_skb_store_bytes, bpf_l3_csum_replace)
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

#define DSCP 46
#define IP_OFF sizeof(struct ethhdr)
#define CSUM_OFF (IP_OFF + __builtin_offsetof(struct iphdr, check))

int lk_set_dscp(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;                          // only IPv4 has this TOS byte
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return TC_ACT_OK;
    u16 old_word = *(u16 *)ip;                     // version/IHL and TOS, as in the packet
    u8 tos = (ip->tos & 0x03) | (DSCP << 2);       // ECN (low two bits) kept
    if (tos == ip->tos)
        return TC_ACT_OK;
    u16 new_word = old_word;
    ((u8 *)&new_word)[1] = tos;
    // the store invalidates the packet pointers: nothing is read through them after it
    bpf_skb_store_bytes(skb, IP_OFF + 1, &tos, 1, 0);
    bpf_l3_csum_replace(skb, CSUM_OFF, old_word, new_word, 2);
    return TC_ACT_OK;
}
