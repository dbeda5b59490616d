// labkit app: app_opens: the user space of lesson 14's libbpf application (its BPF half: ../app_opens.bpf.c).
//
// Built by labkit (labkit.programs.app.build_app("app_opens")) as a libbpf application is built:
//   clang -O2 -g -target bpf -c app_opens.bpf.c -o app_opens.bpf.o      (against vmlinux.h)
//   bpftool gen skeleton app_opens.bpf.o name app_opens_bpf > app_opens.skel.h
//   clang -O2 -g app_opens.c -lbpf -o app_opens                           (this file, with the skeleton)
// The skeleton embeds the object and gives it a typed face: skel->rodata, skel->maps, skel->progs.
//
//   app_opens --pid PID --pin-dir DIR [--seconds N]
// prints "ready ..." once attached, then one line per file PID opens
// (event, pid, tid, depth, stage, comm, filename: tab-separated), until its
// stdin is closed or N seconds (default 30) passed; then "opens N" (the pinned
// count, this run's and earlier runs') and "done".
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "app_opens.skel.h"

#define NAME_LEN 256

struct event {                      /* as in app_opens.bpf.c */
    __u32 pid;
    __u32 tid;
    __s32 depth;
    __u32 stage;
    char comm[16];
    char filename[NAME_LEN];
};

static int on_event(void *ctx, void *data, size_t size)
{
    const struct event *e = data;
    if (size < sizeof(*e)) {
        fprintf(stderr, "app_opens: a record of %zu bytes, not %zu: the two halves disagree\n", size, sizeof(*e));
        return -EINVAL;
    }
    printf("event\t%u\t%u\t%d\t%u\t%s\t%s\n", e->pid, e->tid, e->depth, e->stage, e->comm, e->filename);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: app_opens --pid PID --pin-dir DIR [--seconds N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    long pid = 0, seconds = 30;
    const char *pin_dir = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--pid"))
            pid = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--pin-dir"))
            pin_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds"))
            seconds = strtol(argv[i + 1], NULL, 10);
        else
            return usage();
    }
    if (pid <= 0 || !pin_dir || seconds <= 0 || argc % 2 == 0)
        return usage();

    /* open: the object is parsed, nothing is in the kernel yet; the pin root is where
       LIBBPF_PIN_BY_NAME maps go (and are found again) */
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
    struct app_opens_bpf *skel = app_opens_bpf__open_opts(&opts);
    if (!skel) {
        fprintf(stderr, "app_opens: cannot open the BPF object: %s\n", strerror(errno));
        return 1;
    }
    /* read-only globals: set between open and load, then frozen */
    skel->rodata->target_tgid = (__u32)pid;
    /* bpf_loop is 5.17: without it, lk_depth is not loaded and slot 0 stays empty */
    int has_loop = libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_loop, NULL) == 1;
    if (!has_loop)
        bpf_program__set_autoload(skel->progs.lk_depth, false);

    int err = app_opens_bpf__load(skel);
    if (err) {
        fprintf(stderr, "app_opens: cannot load the BPF object: %s\n", strerror(-err));
        app_opens_bpf__destroy(skel);
        return 1;
    }
    if (has_loop) {                 /* fill the prog array: slot 0 -> lk_depth */
        __u32 slot = 0;
        int fd = bpf_program__fd(skel->progs.lk_depth);
        err = bpf_map_update_elem(bpf_map__fd(skel->maps.stages), &slot, &fd, BPF_ANY);
        if (err) {
            fprintf(stderr, "app_opens: cannot fill slot 0 of stages: %s\n", strerror(errno));
            app_opens_bpf__destroy(skel);
            return 1;
        }
    }
    skel->links.lk_openat = bpf_program__attach(skel->progs.lk_openat);
    if (!skel->links.lk_openat) {
        fprintf(stderr, "app_opens: cannot attach lk_openat: %s\n", strerror(errno));
        app_opens_bpf__destroy(skel);
        return 1;
    }
    struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL, NULL);
    if (!rb) {
        fprintf(stderr, "app_opens: cannot read the ring buffer: %s\n", strerror(errno));
        app_opens_bpf__destroy(skel);
        return 1;
    }
    printf("ready\tpid %ld\tbpf_loop %s\tpinned %s\n", pid, has_loop ? "yes" : "no",
           bpf_map__pin_path(skel->maps.opens) ? bpf_map__pin_path(skel->maps.opens) : "(not pinned)");
    fflush(stdout);

    time_t end = time(NULL) + seconds;
    struct pollfd in = {.fd = 0, .events = POLLIN};
    char buf[256];
    while (time(NULL) < end) {
        err = ring_buffer__poll(rb, 50 /* ms */);
        if (err < 0 && err != -EINTR)
            break;
        fflush(stdout);
        if (poll(&in, 1, 0) > 0 && read(0, buf, sizeof(buf)) <= 0)
            break;                  /* stdin closed: time to go */
    }
    ring_buffer__consume(rb);       /* what is left in the ring */
    __u32 zero = 0;
    __u64 n = 0;
    bpf_map_lookup_elem(bpf_map__fd(skel->maps.opens), &zero, &n);
    printf("opens\t%llu\ndone\n", (unsigned long long)n);
    fflush(stdout);
    ring_buffer__free(rb);
    app_opens_bpf__destroy(skel);   /* detaches and frees; the pin (and so the map `opens`) stays */
    return 0;
}
