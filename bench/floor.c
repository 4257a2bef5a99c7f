/*
 * The floor baselines of `make bench`: the cost of a cross-process round trip of 8 bytes,
 * with nothing of pybridge in it.
 *   floor pipe PYTHON N   this program and a minimal Python loop (its child) ping-pong over
 *                         a pipe pair, each side sleeping in read() (the blocking floor);
 *   floor spin N          this program and a forked copy ping-pong through shared memory,
 *                         both busy-polling (the physical limit of a round trip here).
 * At least N round trips and at least 0.5 s. Prints {"p50":..,"p99":..,"min":..,"max":..}
 * in microseconds per round trip, and "node_cpu_us"/"worker_cpu_us": the CPU time per round
 * trip of this side and of the child, from /proc/PID/stat like the rest of the bench.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIN_NS 500000000.0
#define WARMUP 1000

/* The shared page of the spin floor: each side's sequence number on its own cache line. */
struct spin {
    _Atomic uint64_t ping;
    char ping_data[8];
    char pad[48];
    _Atomic uint64_t pong;
    char pong_data[8];
};

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* utime + stime of a process so far, in microseconds. */
static double cpu_us(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "r"))) return 0;
    buf[fread(buf, 1, sizeof buf - 1, f)] = 0;
    fclose(f);
    /* the fields after the command name, which may hold spaces: state is field 3 */
    if ((p = strrchr(buf, ')')))
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void spin_child(struct spin *s)
{
    uint64_t seen = 0, seq;
    for (;;) {
        while ((seq = atomic_load_explicit(&s->ping, memory_order_acquire)) == seen) relax();
        if (seq == UINT64_MAX) _exit(0);
        memcpy(s->pong_data, s->ping_data, 8);
        atomic_store_explicit(&s->pong, seq, memory_order_release);
        seen = seq;
    }
}

static int spin_trip(struct spin *s, uint64_t seq, char *buf)
{
    memcpy(s->ping_data, buf, 8);
    atomic_store_explicit(&s->ping, seq, memory_order_release);
    while (atomic_load_explicit(&s->pong, memory_order_acquire) != seq) relax();
    memcpy(buf, s->pong_data, 8);
    return 1;
}

static pid_t pipe_child(const char *python, int *to, int *from)
{
    int a[2], b[2];
    pid_t pid;
    if (pipe(a) || pipe(b)) return -1;
    if ((pid = fork()) == 0) {
        dup2(a[0], 0);
        dup2(b[1], 1);
        /* only 0 and 1 stay open: holding its own stdin's write end, it would never see EOF */
        close(a[0]);
        close(a[1]);
        close(b[0]);
        close(b[1]);
        execl(python, python, "-c",
              "import os\nwhile True:\n b=os.read(0,8)\n if not b: break\n os.write(1,b)\n",
              (char *)NULL);
        _exit(127);
    }
    close(a[0]);
    close(b[1]);
    *to = a[1];
    *from = b[0];
    return pid;
}

int main(int argc, char **argv)
{
    int spin = argc == 3 && !strcmp(argv[1], "spin"), to = -1, from = -1;
    long n = atol(argv[argc - 1]), cap, i, done;
    struct spin *s = NULL;
    double *t, start = 0, self0 = 0, child0 = 0;
    char buf[8] = "12345678";
    pid_t pid;
    if (!spin && !(argc == 4 && !strcmp(argv[1], "pipe"))) {
        fprintf(stderr, "usage: floor pipe PYTHON N | floor spin N\n");
        return 2;
    }
    if (spin) {
        s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (s == MAP_FAILED) return 2;
        memset(s, 0, sizeof *s);
        if ((pid = fork()) == 0) spin_child(s);
    } else {
        pid = pipe_child(argv[2], &to, &from);
    }
    if (pid < 0 || n < 1) return 2;
    cap = n;
    t = malloc(sizeof(double) * (size_t)cap);
    for (i = -WARMUP, done = 0; ; i++) {
        double a, b;
        if (i == 0) {
            start = now_ns();
            self0 = cpu_us(getpid());
            child0 = cpu_us(pid);
        }
        a = now_ns();
        if (spin ? !spin_trip(s, (uint64_t)(i + WARMUP + 1), buf)
                 : write(to, buf, 8) != 8 || read(from, buf, 8) != 8)
            return 1;
        b = now_ns();
        if (i < 0) continue;
        if (done == cap && !(t = realloc(t, sizeof(double) * (size_t)(cap *= 2)))) return 2;
        t[done++] = (b - a) / 1e3;
        if (done >= n && b - start >= MIN_NS) break;
    }
    {
        double self_us = cpu_us(getpid()) - self0, child_us = cpu_us(pid) - child0;
        if (spin) atomic_store_explicit(&s->ping, UINT64_MAX, memory_order_release);
        else close(to);
        waitpid(pid, NULL, 0);
        qsort(t, (size_t)done, sizeof(double), cmp);
        printf("{\"p50\": %.3f, \"p99\": %.3f, \"min\": %.3f, \"max\": %.3f, \"n\": %ld, "
               "\"node_cpu_us\": %.3f, \"worker_cpu_us\": %.3f}\n",
               t[done / 2], t[done * 99 / 100], t[0], t[done - 1], done, self_us / (double)done,
               child_us / (double)done);
    }
    return 0;
}
