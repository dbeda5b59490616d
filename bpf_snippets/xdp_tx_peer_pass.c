// labkit snippet: xdp_tx_peer_pass: pass every frame; put on a veth's far end so native XDP_TX can reach it (lesson 07).
// hook: XDP on one interface (native mode on the peer of a veth that uses XDP_TX or XDP_REDIRECT)
// min kernel: 4.19 (XDP_TX and XDP_REDIRECT on veth)
//
// A native-mode XDP program on a veth hands XDP_TX and XDP_REDIRECT frames
// straight to the peer's XDP receive queue, which exists only while the peer
// has an XDP program (or GRO turned on). Without it the frames are dropped.
// This program is that peer program: it does nothing but make the queue exist.
#include <uapi/linux/bpf.h>

int lk_xdp_tx_peer_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}
