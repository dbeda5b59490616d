// labkit snippet: xdp_abort_demo: give up on some packets with XDP_ABORTED (lesson 07).
// hook: XDP on one interface (native or generic mode)
// min kernel: 4.8 (XDP)
//
// XDP_ABORTED drops the packet like XDP_DROP, but says "the program failed":
// the kernel fires the tracepoint xdp:xdp_exception for it (with the
// interface, the program's id and the action), where XDP_DROP fires nothing.
// This program aborts on UDP datagrams to port LK_ABORT_PORT (its "bug") and
// passes everything else.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/in.h>

#ifndef LK_ABORT_PORT
#define LK_ABORT_PORT 4242
#endif

int lk_xdp_abort_demo(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    struct udphdr *udp = (void *)ip + ip->ihl * 4;
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    if (udp->dest == bpf_htons(LK_ABORT_PORT))
        return XDP_ABORTED;
    return XDP_PASS;
}
