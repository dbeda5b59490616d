// labkit snippet: xdp_icmp_drop_classic: the classic "drop ping" XDP example, bug included.
// hook: XDP on one interface (native or generic mode)
// min kernel: 4.8 (XDP); labkit attaches it through a bpf_link (5.9+)
//
// THE BUG (on purpose, for lesson 02): every frame that is not IPv4 is dropped.
// That includes ARP, so once the neighbour cache entry expires nobody can find
// this host's MAC address and *all* IPv4 traffic stops, UDP and TCP included;
// and all of IPv6. On a VM's main interface that is the SSH session, a few
// minutes later. Compare xdp_icmp_drop.c, which passes everything but echo.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/in.h>
#include "labkit.h"

struct counter {
    u64 packets;
    u64 bytes;
};

// same counter layout as xdp_icmp_drop.c, so labkit can show both alike
#define P_OTHER 0
#define P_ARP 1
#define P_ICMP 2
#define P_UDP 4
#define P_TCP 5
#define P_IPV4 6
#define P_IPV6 7
#define N_PROTO 8
BPF_PERCPU_ARRAY(counters, struct counter, 4 * N_PROTO);

static __always_inline int verdict(u32 action, u8 proto, u32 len)
{
    u32 idx = action * N_PROTO + proto;
    struct counter *c = counters.lookup(&idx);
    if (c) {
        c->packets += 1;
        c->bytes += len;
    }
    return action;
}

int lk_xdp_classic(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    u32 len = data_end - data;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return verdict(XDP_DROP, P_OTHER, len);
    u16 ethertype = bpf_ntohs(eth->h_proto);
    if (ethertype != ETH_P_IP) {           // <-- drops ARP and IPv6 too
        u8 p = ethertype == ETH_P_ARP ? P_ARP : ethertype == ETH_P_IPV6 ? P_IPV6 : P_OTHER;
        return verdict(XDP_DROP, p, len);
    }
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return verdict(XDP_DROP, P_IPV4, len);
    if (ip->protocol == IPPROTO_ICMP)
        return verdict(XDP_DROP, P_ICMP, len);
    u8 p = ip->protocol == IPPROTO_UDP ? P_UDP : ip->protocol == IPPROTO_TCP ? P_TCP : P_IPV4;
    return verdict(XDP_PASS, p, len);
}
