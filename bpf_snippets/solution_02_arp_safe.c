// labkit snippet: solution_02_arp_safe: lesson 02, exercise solved: the classic drop program, made ARP-safe.
// hook: XDP on one interface (native or generic mode)
// min kernel: 4.8 (XDP)
//
// xdp_icmp_drop_classic.c drops every frame that is not IPv4, ARP included,
// so IPv4 stops working as soon as the neighbour cache forgets the peer. The
// fix: pass what is not IPv4 instead of dropping it, and drop only ICMP echo.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/in.h>

int lk_xdp_arp_safe(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;                   // ARP, IPv6, ...: not ours to judge
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    if (ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    unsigned char *icmp = (unsigned char *)ip + ip->ihl * 4;
    if (icmp + 1 > (unsigned char *)data_end)
        return XDP_PASS;
    if (*icmp == 8 || *icmp == 0)          // echo request, echo reply
        return XDP_DROP;
    return XDP_PASS;
}
