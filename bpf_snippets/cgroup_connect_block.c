// labkit snippet: cgroup_connect_block: refuse TCP connects to port LK_PORT from the cgroup it sits on.
// hook: cgroup/connect4 (BPF_CGROUP_INET4_CONNECT) of one cgroup v2 directory, through a bpf_link
// min kernel: 5.7 (cgroup bpf_links; connect4 programs themselves since 4.17)
//
// A connect4 program runs in the process that calls connect() on an IPv4
// socket, TCP or UDP, for every socket of its cgroup and the cgroups below it.
// ctx->user_port is the destination port as the process gave it: in network
// byte order (bpf_htons(LK_PORT)). Returning 0 refuses the connect (the
// process sees EPERM); 1 lets it go on. verdicts counts both, per CPU.
#include <uapi/linux/bpf.h>
#include <uapi/linux/in.h>

#ifndef LK_PORT
#define LK_PORT 8080
#endif

BPF_PERCPU_ARRAY(verdicts, u64, 2);   // [0] connects let through, [1] refused

int lk_connect_block(struct bpf_sock_addr *ctx)
{
    u32 refused = ctx->protocol == IPPROTO_TCP && ctx->user_port == bpf_htons(LK_PORT);
    verdicts.increment(refused);
    return refused ? 0 : 1;
}
