// labkit snippet: solution_07_lpm_rules: lesson 07, exercise 2 solved: allow and block rules, longest prefix wins.
// hook: XDP on one interface (native or generic mode)
// min kernel: 4.11 (LPM trie map)
//
// `rules` maps IPv4 source prefixes to a verdict: 1 drop, 0 pass. The trie's
// lookup returns the entry with the longest matching prefix, so a /29 that
// passes inside a /26 that drops wins for its eight addresses. No match: pass.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

struct rule_key {
    u32 prefixlen;                 // bits
    __be32 addr;                   // network byte order, as in the packet
};

BPF_LPM_TRIE(rules, struct rule_key, u32, 64);

int lk_lpm_rules(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    struct rule_key key = {.prefixlen = 32, .addr = ip->saddr};
    u32 *verdict = rules.lookup(&key);
    if (verdict && *verdict == 1)
        return XDP_DROP;
    return XDP_PASS;
}
