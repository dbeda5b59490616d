// labkit snippet: solution_14_dispatcher: lesson 14, exercise q1 solved: an XDP dispatcher that tail-calls a handler by IP protocol.
// hook: xdp, as SEC("xdp") (CO-RE: lab.load_object(..., attach=False); the checker test-runs it on packets)
// min kernel: 5.4 (kernel BTF; tail calls 4.2, a prog array filled by libbpf from .values)
//
// lk_dispatch reads the IPv4 header's protocol and jumps through the prog
// array `handlers` to the program in that slot: lk_on_icmp (slot 1) drops,
// lk_on_udp (slot 17) counts and passes. A tail call to an empty slot does
// not jump: the dispatcher goes on after bpf_tail_call(), and passes. Not
// IPv4 (ARP, IPv6): pass before reading any protocol byte.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
} udp_seen SEC(".maps");

SEC("xdp")
int lk_on_icmp(struct xdp_md *ctx)
{
    return XDP_DROP;
}

SEC("xdp")
int lk_on_udp(struct xdp_md *ctx)
{
    u32 zero = 0;
    u64 *n = bpf_map_lookup_elem(&udp_seen, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;
}

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 256);
    __type(key, u32);
    __array(values, int (struct xdp_md *));
} handlers SEC(".maps") = {
    .values = {
        [1] = (void *)&lk_on_icmp,      // IPPROTO_ICMP
        [17] = (void *)&lk_on_udp,      // IPPROTO_UDP
    },
};

SEC("xdp")
int lk_dispatch(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    bpf_tail_call(ctx, &handlers, ip->protocol);
    return XDP_PASS;        // no handler in that slot: the tail call did not jump
}

char LICENSE[] SEC("license") = "GPL";
