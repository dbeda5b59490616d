// labkit snippet: xdp_icmp_drop: drop ping (ICMP and ICMPv6 echo), pass everything else.
// hook: XDP on one interface (native or generic mode)
// min kernel: 5.8 (BPF ring buffer); 5.9 for bpf_link attach (detaches when its process dies)
//
// What passes: ARP, IPv6 neighbour discovery (ICMPv6 133-137), UDP, TCP, and
// every ICMP message that is not an echo. Dropping every non-IPv4 frame (the
// classic example, xdp_icmp_drop_classic.c) kills ARP and IPv6: see lesson 02.
//
// Counters are exact: a per-CPU array indexed by (action, protocol) with
// packets and bytes. Events are sampled: one in LK_SAMPLE_EVERY decisions
// goes to the ring buffer (losses counted in `lost`).
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>
#include "labkit.h"

#ifndef LK_SAMPLE_EVERY
#define LK_SAMPLE_EVERY 1
#endif

// protocol classes: the counters' second index (labkit names them)
#define P_OTHER 0
#define P_ARP 1
#define P_ICMP 2
#define P_ICMPV6 3
#define P_UDP 4
#define P_TCP 5
#define P_IPV4 6      // IPv4, another protocol
#define P_IPV6 7      // IPv6, another next header
#define N_PROTO 8

struct counter {
    u64 packets;
    u64 bytes;
};

struct xdp_event {
    u64 ts;
    u8 saddr[16];      // IPv4 in the first 4 bytes, or IPv6
    u8 daddr[16];
    u32 len;           // frame length
    u16 ethertype;
    u8 family;         // 4, 6 or 0
    u8 proto;          // protocol class (P_*)
    u8 ip_proto;       // IP protocol / IPv6 next header
    u8 action;         // XDP_DROP = 1, XDP_PASS = 2
    u8 icmp_type;
    u8 pad;
};

BPF_PERCPU_ARRAY(counters, struct counter, 4 * N_PROTO);   // index: action * N_PROTO + proto
BPF_PERCPU_ARRAY(seen, u64, 1);                           // for sampling
BPF_RINGBUF_OUTPUT(events, LK_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(lost, u64, 1);

int lk_xdp_icmp_drop(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    u32 len = data_end - data;
    struct ethhdr *eth = data;
    u8 proto = P_OTHER, family = 0, ip_proto = 0, icmp_type = 0xff;
    u32 action = XDP_PASS;
    u8 saddr[16] = {}, daddr[16] = {};
    u16 ethertype = 0;

    if ((void *)(eth + 1) > data_end)
        goto count;                       // runt frame: not ours to judge
    ethertype = bpf_ntohs(eth->h_proto);

    if (ethertype == ETH_P_ARP) {
        proto = P_ARP;
    } else if (ethertype == ETH_P_IP) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end)
            goto count;
        family = 4;
        ip_proto = ip->protocol;
        __builtin_memcpy(saddr, &ip->saddr, 4);
        __builtin_memcpy(daddr, &ip->daddr, 4);
        proto = P_IPV4;
        u8 *l4 = (u8 *)ip + ip->ihl * 4;
        if (ip_proto == IPPROTO_ICMP) {
            proto = P_ICMP;
            if (l4 + 1 <= (u8 *)data_end) {
                icmp_type = *l4;
                if (icmp_type == 8 || icmp_type == 0)      // echo request, echo reply
                    action = XDP_DROP;
            }
        } else if (ip_proto == IPPROTO_UDP) {
            proto = P_UDP;
        } else if (ip_proto == IPPROTO_TCP) {
            proto = P_TCP;
        }
    } else if (ethertype == ETH_P_IPV6) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end)
            goto count;
        family = 6;
        ip_proto = ip6->nexthdr;
        __builtin_memcpy(saddr, &ip6->saddr, 16);
        __builtin_memcpy(daddr, &ip6->daddr, 16);
        proto = P_IPV6;
        u8 *l4 = (u8 *)(ip6 + 1);
        if (ip_proto == IPPROTO_ICMPV6) {
            proto = P_ICMPV6;
            if (l4 + 1 <= (u8 *)data_end) {
                icmp_type = *l4;
                if (icmp_type == 128 || icmp_type == 129)  // echo request, echo reply
                    action = XDP_DROP;                     // neighbour discovery (133-137) passes
            }
        } else if (ip_proto == IPPROTO_UDP) {
            proto = P_UDP;
        } else if (ip_proto == IPPROTO_TCP) {
            proto = P_TCP;
        }
    }

count:;
    u32 idx = action * N_PROTO + proto;
    struct counter *c = counters.lookup(&idx);
    if (c) {
        c->packets += 1;                  // per-CPU: no atomics needed, and exact
        c->bytes += len;
    }

    u32 zero = 0;
    u64 *n = seen.lookup(&zero);
    if (n) {
        *n += 1;
        if (*n % LK_SAMPLE_EVERY == 0) {
            struct xdp_event *e = events.ringbuf_reserve(sizeof(*e));
            if (!e) {
                lost.increment(0);
            } else {
                e->ts = bpf_ktime_get_ns();
                __builtin_memcpy(e->saddr, saddr, 16);
                __builtin_memcpy(e->daddr, daddr, 16);
                e->len = len;
                e->ethertype = ethertype;
                e->family = family;
                e->proto = proto;
                e->ip_proto = ip_proto;
                e->action = action;
                e->icmp_type = icmp_type;
                e->pad = 0;
                events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
            }
        }
    }
    return action;
}
