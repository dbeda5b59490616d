// labkit snippet: xdp_redirect_router: carry IPv4 between two links with XDP_REDIRECT through a devmap (lesson 07).
// hook: XDP on both links of a middle namespace (generic mode on a veth: see lesson 07)
// min kernel: 4.14 (devmap; generic-mode redirect through it)
//
// `ports`, filled from Python, says for each link the program sits on (the
// key: its ifindex) where a packet goes: the link to send it out of, that
// link's own MAC address (the new source) and the next hop's (the new
// destination), and the link's own IPv4 address: packets *to* that address are
// the middle namespace's own and go to its stack (XDP_PASS), like ARP.
// `out` is the devmap: bpf_redirect_map() sends the frame out of the device
// stored at that index, without the kernel's routing (it is off: IPv4
// forwarding is disabled in the middle namespace). A real router also
// decrements the TTL; this one does not, so traceroute does not see it.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

struct port {
    u32 out_index;                 // index into `out` (the devmap)
    __be32 own_ip;                 // the ingress link's own address: not to be carried across
    unsigned char src_mac[ETH_ALEN];
    unsigned char dst_mac[ETH_ALEN];
};

BPF_HASH(ports, u32, struct port, 8);          // ingress ifindex -> where to
BPF_DEVMAP(out, 8);                            // index -> egress ifindex
BPF_PERCPU_ARRAY(redirected, u64, 1);

int lk_xdp_redirect_router(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;                       // ARP and the rest: the middle's own stack
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    u32 in = ctx->ingress_ifindex;
    struct port *p = ports.lookup(&in);
    if (!p || ip->daddr == p->own_ip)
        return XDP_PASS;
    __builtin_memcpy(eth->h_source, p->src_mac, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, p->dst_mac, ETH_ALEN);
    redirected.increment(0);
    return out.redirect_map(p->out_index, 0);
}
