// labkit snippet: solution_07_ping_responder: lesson 07, exercise 1 solved: answer pings with XDP_TX.
// hook: XDP on one interface (generic mode on a veth: see lesson 07)
// min kernel: 4.8 (XDP)
//
// Only echo requests (ICMP type 8, code 0) are answered; every other frame
// (ARP, echo replies, other ICMP, UDP, ...) goes to the stack. The checksum is
// updated incrementally (RFC 1624): the type byte went from 8 to 0, so the
// one's complement sum lost 0x0800 in the ICMP header's first 16-bit word,
// and the checksum (its complement) grows by the same amount, with the carry
// folded back in.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/in.h>

int lk_ping_responder(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    struct icmphdr *icmp = (void *)ip + ip->ihl * 4;
    if ((void *)(icmp + 1) > data_end || icmp->type != ICMP_ECHO || icmp->code != 0)
        return XDP_PASS;

    unsigned char mac[ETH_ALEN];
    __builtin_memcpy(mac, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
    __be32 addr = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = addr;

    icmp->type = ICMP_ECHOREPLY;
    u32 sum = (u32)icmp->checksum + bpf_htons(ICMP_ECHO << 8);   // RFC 1624: HC' = HC + m - m'
    icmp->checksum = (u16)(sum + (sum >> 16));                   // fold the carry
    return XDP_TX;
}
