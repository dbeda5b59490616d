/* labkit bench load generator (compiled at run time by labkit bench).
 *   loadgen                     prints "READY <pid>", then reads commands on stdin:
 *     R <rate> <seconds> <limit>  prints "S", then calls getppid() <rate> times a second
 *                                 (0: flat out) for <seconds> (0: no limit) or <limit> calls
 *                                 (0: no limit), or until SIGUSR1; then prints
 *                                 "D <calls> <elapsed_ns> 0"
 *     Q                           quit
 *   loadgen udp <ip> <port> <count> <max_seconds>
 *                               sends <count> UDP datagrams as fast as it can,
 *                               prints "D <sent> <elapsed_ns> <errors>"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_usr1(int sig) { (void)sig; stop = 1; }

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void nap(long long ns) {
    struct timespec t = { ns / 1000000000LL, ns % 1000000000LL };
    nanosleep(&t, NULL);
}

static int udp_fd = -1;
static struct sockaddr_in udp_to;
static char payload[32] = "labkit bench datagram";
static long long errors;

static inline long long op(void) {
    if (udp_fd >= 0) {
        if (sendto(udp_fd, payload, sizeof payload, 0, (struct sockaddr *)&udp_to, sizeof udp_to) < 0) {
            errors++;
            return 0;
        }
        return 1;
    }
    syscall(SYS_getppid);
    return 1;
}

static long long run(double rate, double secs, long long limit, long long *elapsed) {
    long long n = 0, t0 = now_ns(), t = t0;
    long long end = secs > 0 ? t0 + (long long)(secs * 1e9) : 0;
    for (;;) {
        long long batch = 256;
        if (rate > 0) {
            long long due = (long long)((double)(t - t0) * rate / 1e9) + 1 - n;
            if (due <= 0) {
                /* ahead of schedule: sleep until 1 ms worth of calls is due, then make
                 * them in a burst (spinning between single calls would take a whole
                 * CPU away from the consumer at any rate) */
                double quantum = rate / 1000.0 < 1.0 ? 1.0 : rate / 1000.0;
                long long wait = (long long)(((double)n + quantum - 1.0) * 1e9 / rate) - (t - t0);
                if (wait > 20000)
                    nap(wait);
                t = now_ns();
                if (stop || (end && t >= end))
                    break;
                continue;
            }
            batch = due < 4096 ? due : 4096;
        }
        if (limit && limit - n < batch)
            batch = limit - n;
        for (long long i = 0; i < batch; i++)
            n += op();
        t = now_ns();
        if (stop || (end && t >= end) || (limit && n >= limit))
            break;
    }
    *elapsed = t - t0;
    return n;
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    long long elapsed, n;
    if (argc == 6 && strcmp(argv[1], "udp") == 0) {
        udp_fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (udp_fd < 0) { perror("socket"); return 1; }
        udp_to.sin_family = AF_INET;
        udp_to.sin_port = htons(atoi(argv[3]));
        if (inet_pton(AF_INET, argv[2], &udp_to.sin_addr) != 1) { fprintf(stderr, "bad ip\n"); return 1; }
        n = run(0, atof(argv[5]), atoll(argv[4]), &elapsed);
        printf("D %lld %lld %lld\n", n, elapsed, errors);
        return 0;
    }
    printf("READY %d\n", getpid());
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        double rate = 0, secs = 0;
        long long limit = 0;
        if (line[0] == 'Q')
            break;
        if (sscanf(line, "R %lf %lf %lld", &rate, &secs, &limit) != 3)
            continue;
        stop = 0;
        printf("S\n");                  /* started: SIGUSR1 from now on ends this run */
        fflush(stdout);
        n = run(rate, secs, limit, &elapsed);
        printf("D %lld %lld 0\n", n, elapsed);
        fflush(stdout);
    }
    return 0;
}
