/*
 * The floor baseline of `make bench`: this C program and a minimal Python loop (its
 * child) ping-pong 8 bytes over a pipe pair. Prints {"p50":..,"min":..,"max":..}
 * in microseconds per round trip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int to[2], from[2], n = argc > 2 ? atoi(argv[2]) : 20000, i;
    double *t = malloc(sizeof(double) * (size_t)n);
    char buf[8] = "12345678";
    if (argc < 2 || pipe(to) || pipe(from)) return 2;
    if (fork() == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        /* only 0 and 1 stay open: holding its own stdin's write end, it would never see EOF */
        close(to[0]);
        close(to[1]);
        close(from[0]);
        close(from[1]);
        execl(argv[1], argv[1], "-c",
              "import os\nwhile True:\n b=os.read(0,8)\n if not b: break\n os.write(1,b)\n",
              (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    for (i = -1000; i < n; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (write(to[1], buf, 8) != 8 || read(from[0], buf, 8) != 8) return 1;
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (i >= 0) t[i] = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
    }
    qsort(t, (size_t)n, sizeof(double), cmp);
    printf("{\"p50\": %.2f, \"min\": %.2f, \"max\": %.2f}\n", t[n / 2], t[0], t[n - 1]);
    return 0;
}
