// labkit snippet: xdp_tx_no_checksum: answer pings with XDP_TX, but forget the ICMP checksum (lesson 07).
// hook: XDP on one interface (generic mode on a veth: see lesson 07)
// min kernel: 4.8 (XDP)
//
// An echo request (ICMP type 8) is turned into its echo reply right where it
// arrived: swap the Ethernet addresses, swap the IP addresses, set the type to
// 0 (echo reply) and send the frame back out of the same interface (XDP_TX).
// The kernel's stack never sees the request. What it forgets: the ICMP
// checksum covers the type, so changing 8 to 0 makes the checksum wrong, and
// the receiver throws the reply away (its Icmp InCsumErrors counts them).
// Swapping the IP addresses needs no fix: a one's complement sum does not
// depend on the order of what it adds up.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/in.h>

BPF_PERCPU_ARRAY(answered, u64, 1);       // echo requests turned around

int lk_xdp_tx_no_checksum(struct xdp_md *ctx)
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
    if ((void *)(icmp + 1) > data_end || icmp->type != ICMP_ECHO)
        return XDP_PASS;

    unsigned char mac[ETH_ALEN];
    __builtin_memcpy(mac, eth->h_source, ETH_ALEN);       // Ethernet: back to where it came from
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
    __be32 addr = ip->saddr;                              // IP: from the target, to the sender
    ip->saddr = ip->daddr;
    ip->daddr = addr;
    icmp->type = ICMP_ECHOREPLY;                          // ... and the checksum? (see lesson 07's exercise)
    answered.increment(0);
    return XDP_TX;
}
