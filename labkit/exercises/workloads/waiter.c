/* lk_waiter: a program that mostly waits, in known places (lesson 10).
 *
 * Prints "ready" and waits for a line on stdin; then
 *   lk_think()       works on the CPU (a few milliseconds on a quiet machine);
 *   lk_nap()         sleeps 10 times 10 ms (nanosleep): at least 100 ms off the CPU;
 *   lk_wait_input()  prints "waiting" and blocks reading stdin until the next line
 *                    (the checker sends it 0.4 s later): at least 400 ms off the CPU;
 * prints "done" and waits for its stdin to close (its memory map stays readable, for symbols).
 *
 * Its system calls are made by a syscall instruction inside these functions, not
 * through libc: libc is built without frame pointers, and a frame-pointer walk
 * that starts inside a libc wrapper skips the function that called it. Built with
 * frame pointers (-fno-omit-frame-pointer, -O0), so the user stack a BPF program
 * takes while the thread leaves the CPU names the function that waits.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <time.h>

static volatile unsigned long sink;

__attribute__((always_inline)) static inline long lk_syscall3(long n, long a, long b, long c)
{
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
#else
#error "lk_waiter knows the system call instruction of x86_64 and aarch64 only"
#endif
}

__attribute__((always_inline)) static inline void lk_say(const char *text, long n)
{
    lk_syscall3(SYS_write, 1, (long)text, n);
}

/* reads stdin up to a newline, one byte at a time (no buffering: nothing is read ahead) */
__attribute__((always_inline)) static inline int lk_read_line(void)
{
    char c = 0;
    while (c != '\n')
        if (lk_syscall3(SYS_read, 0, (long)&c, 1) <= 0)
            return -1;
    return 0;
}

__attribute__((noinline)) void lk_think(void)
{
    unsigned long x = sink;
    for (long i = 0; i < 2000000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    sink = x;
}

__attribute__((noinline)) void lk_nap(void)
{
    struct timespec ten_ms = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 10; i++)
        lk_syscall3(SYS_nanosleep, (long)&ten_ms, 0, 0);
}

__attribute__((noinline)) int lk_wait_input(void)
{
    lk_say("waiting\n", 8);
    return lk_read_line();
}

int main(void)
{
    lk_say("ready\n", 6);
    if (lk_read_line())
        return 1;
    lk_think();
    lk_nap();
    if (lk_wait_input())
        return 1;
    lk_say("done\n", 5);
    while (lk_read_line() == 0)
        ;
    return 0;
}
