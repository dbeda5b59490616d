/* lk_busy: a CPU-bound program whose hot function is known (lesson 10).
 *
 * Two threads do the same work until each has run `seconds` (argv[1], default 1)
 * on a CPU (its own CPU time: on a busy machine that takes longer), after a line
 * on stdin: main() and lk_worker() each call three stages in a loop.
 * lk_compress() does four times the work of lk_parse() and of lk_checksum():
 * about 2/3 of the CPU time is spent under lk_compress. Every stage does its
 * work in the same leaf, lk_mix(); lk_checksum() reaches it through four
 * rounds, so its samples spread over more distinct stacks than the others'.
 * Built with frame pointers (-fno-omit-frame-pointer, -O0, nothing inlined),
 * so a BPF user-stack walk sees every frame of it. Protocol: prints "ready",
 * waits for a line, starts the worker, works, prints "done" and then
 * "cpu <seconds of main> <seconds of the worker> <the worker's tid>", and waits
 * for its stdin to close (its memory map stays readable, for symbols).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define UNIT 20000L     /* one unit of work: this many steps of lk_mix */

static volatile unsigned long sink;
static double seconds = 1.0;
static volatile long worker_tid;
static double worker_cpu;

__attribute__((noinline)) unsigned long lk_mix(unsigned long x, long steps)
{
    for (long i = 0; i < steps; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

__attribute__((noinline)) void lk_parse(void) { sink += lk_mix(sink, UNIT); }
__attribute__((noinline)) void lk_compress(void) { sink += lk_mix(sink, 4 * UNIT); }
__attribute__((noinline)) void lk_round1(void) { sink += lk_mix(sink, UNIT / 4); }
__attribute__((noinline)) void lk_round2(void) { sink += lk_mix(sink, UNIT / 4); }
__attribute__((noinline)) void lk_round3(void) { sink += lk_mix(sink, UNIT / 4); }
__attribute__((noinline)) void lk_round4(void) { sink += lk_mix(sink, UNIT / 4); }
__attribute__((noinline)) void lk_checksum(void) { lk_round1(); lk_round2(); lk_round3(); lk_round4(); }

static double elapsed(clockid_t clock, struct timespec since)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (now.tv_sec - since.tv_sec) + (now.tv_nsec - since.tv_nsec) / 1e9;
}

static double cpu_seconds(void)
{
    struct timespec zero = {0, 0};
    return elapsed(CLOCK_THREAD_CPUTIME_ID, zero);
}

__attribute__((noinline)) void lk_stages(double until)
{
    while (cpu_seconds() < until) {
        lk_parse();
        lk_compress();
        lk_checksum();
    }
}

__attribute__((noinline)) void *lk_worker(void *arg)
{
    worker_tid = syscall(SYS_gettid);
    lk_stages(cpu_seconds() + seconds);
    worker_cpu = cpu_seconds();
    return arg;
}

int main(int argc, char **argv)
{
    char line[64];
    pthread_t t;
    if (argc > 1)
        seconds = atof(argv[1]);
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 1;
    pthread_create(&t, NULL, lk_worker, NULL);
    lk_stages(cpu_seconds() + seconds);
    double mine = cpu_seconds();
    pthread_join(t, NULL);
    printf("done\ncpu %.6f %.6f %ld\n", mine, worker_cpu, worker_tid);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
