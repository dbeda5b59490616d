// labkit snippet: solution_08_udp_port_drop: lesson 08 q1, drop IPv4 UDP to port 4444 on egress, let the rest go.
// hook: tc egress of one interface; cls_bpf direct-action or tcx
// min kernel: 4.5 (clsact, direct action)
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/in.h>

#define PORT 4444

int lk_udp_port_drop(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;                     // ARP, IPv6, ...: not ours to judge
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP)
        return TC_ACT_OK;
    struct udphdr *udp = (void *)ip + ip->ihl * 4;   // the IP header may carry options
    if ((void *)(udp + 1) > data_end)
        return TC_ACT_OK;
    if (udp->dest == bpf_htons(PORT))         // on egress: where this host sends to
        return TC_ACT_SHOT;                   // TC's drop (XDP_DROP is 1: TC_ACT_RECLASSIFY)
    return TC_ACT_OK;
}
