// labkit snippet: xdp_fw_lpm: a firewall whose blocked source prefixes live in an LPM trie (lesson 07).
// hook: XDP on one interface (native or generic mode)
// min kernel: 4.11 (LPM trie map)
//
// `blocked` maps IPv4 source prefixes (like 198.18.7.64/26) to how many
// packets each one dropped: a u32, not a u64, because the trie stores each
// value right after its key's 4 address bytes, 4 bytes past an 8-byte
// boundary, and arm64 cannot do an 8-byte atomic add there (the kernel oopses
// on the alignment fault; x86-64 does not mind). A 4-byte add is aligned.
// A longest-prefix-match lookup needs a key that starts with the prefix
// length in bits; for a lookup that is 32 (the whole source address) and the
// trie returns the entry with the longest prefix that matches. Addresses are in network byte order, as they sit in the packet.
// Python edits the trie while traffic runs (labkit.FirewallControl).
// `counters` has labkit's XDP counter layout (exact packets and bytes per
// action and protocol), so labkit.live() draws passes and drops as they happen.
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/in.h>

struct lpm_v4 {
    u32 prefixlen;                 // in bits: 0 .. 32
    __be32 addr;                   // network byte order
};

#define P_OTHER 0                  // protocol classes, as labkit names them
#define P_ARP 1
#define P_ICMP 2
#define P_UDP 4
#define P_TCP 5
#define P_IPV4 6
#define N_PROTO 8

struct counter {
    u64 packets;
    u64 bytes;
};

BPF_LPM_TRIE(blocked, struct lpm_v4, u32, 64);     // u32: see above
BPF_PERCPU_ARRAY(counters, struct counter, 4 * N_PROTO);   // index: action * N_PROTO + protocol

static __always_inline u32 count(u32 action, u32 proto, u32 len)
{
    u32 idx = action * N_PROTO + proto;
    struct counter *c = counters.lookup(&idx);
    if (c) {
        c->packets += 1;           // per-CPU: exact without atomics
        c->bytes += len;
    }
    return action;
}

int lk_xdp_fw_lpm(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    u32 len = data_end - data;

    if ((void *)(eth + 1) > data_end)
        return count(XDP_PASS, P_OTHER, len);
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return count(XDP_PASS, eth->h_proto == bpf_htons(ETH_P_ARP) ? P_ARP : P_OTHER, len);
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return count(XDP_PASS, P_IPV4, len);
    u32 proto = ip->protocol == IPPROTO_ICMP ? P_ICMP : ip->protocol == IPPROTO_UDP ? P_UDP :
                ip->protocol == IPPROTO_TCP ? P_TCP : P_IPV4;
    struct lpm_v4 key = {.prefixlen = 32, .addr = ip->saddr};
    u32 *hits = blocked.lookup(&key);
    if (hits) {
        __sync_fetch_and_add(hits, 1);       // shared by every CPU: atomic (4 bytes, aligned)
        return count(XDP_DROP, proto, len);
    }
    return count(XDP_PASS, proto, len);
}
