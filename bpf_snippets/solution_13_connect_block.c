// labkit snippet: solution_13_connect_block: lesson 13 q1, refuse TCP connects to LK13_PORT from cgroup LK13_CGROUP only.
// hook: cgroup/connect4 of the parent of the checker's cgroups, through a bpf_link
// min kernel: 5.7 (cgroup bpf_links, and bpf_get_current_cgroup_id in connect4 programs)
#include <uapi/linux/bpf.h>
#include <uapi/linux/in.h>

#ifndef LK13_PORT
#define LK13_PORT 8080
#endif
#ifndef LK13_CGROUP
#define LK13_CGROUP 0
#endif

int lk_13_connect(struct bpf_sock_addr *ctx)
{
    if (ctx->protocol != IPPROTO_TCP)                  // UDP's connect() passes this hook too
        return 1;
    if (ctx->user_port != bpf_htons(LK13_PORT))        // network byte order, as the socket holds it
        return 1;
    if (bpf_get_current_cgroup_id() != LK13_CGROUP)    // the program sits on the parent: every child passes here
        return 1;
    return 0;                                          // refused: connect() fails with EPERM
}
