// labkit snippet: verifier_missing_bounds: a deliberate mistake: reading the packet without a bounds check.
// hook: XDP on one interface
// min kernel: 4.8 (XDP)
//
// THE VERIFIER REJECTS THIS (lesson 04): the program reads eth->h_proto, 12
// bytes into the frame, without first proving that the frame is that long.
// The verifier knows `data` only as "a packet pointer with 0 bytes checked"
// (r=0 in its log) and refuses any access past what was compared against
// data_end. The fix is one line; solution_04_bounds_checked.c has it.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>

BPF_ARRAY(counts, u64, 3);           // 0: IPv4, 1: ARP, 2: anything else

int lk_count_ethertypes(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    // missing: if ((void *)(eth + 1) > data_end) return XDP_PASS;
    u16 proto = bpf_ntohs(eth->h_proto);
    int idx = proto == ETH_P_IP ? 0 : proto == ETH_P_ARP ? 1 : 2;
    u64 *n = counts.lookup(&idx);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;
}
