// labkit snippet: solution_04_bounds_checked: lesson 04, exercise 1 solved: the bounds check the verifier asked for.
// hook: XDP on one interface
// min kernel: 4.8 (XDP)
//
// Compare verifier_missing_bounds.c: one comparison against data_end before
// the first read, and every later read of the Ethernet header is proven safe.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>

BPF_ARRAY(counts, u64, 3);           // 0: IPv4, 1: ARP, 2: anything else

int lk_count_ethertypes(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)    // the frame is shorter than an Ethernet header
        return XDP_PASS;
    u16 proto = bpf_ntohs(eth->h_proto);
    int idx = proto == ETH_P_IP ? 0 : proto == ETH_P_ARP ? 1 : 2;
    u64 *n = counts.lookup(&idx);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;
}
