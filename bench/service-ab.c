/* Service mode before/after (bench/service-ab.sh): run against whichever service listens.
 * `service-ab connect N [IDLE_MS]`: N connects, each to its first reply (HPMinit,
 * HPMaddThread, one HPMread), back to back or IDLE_MS apart (as in make bench, where each
 * connect follows other work), median.
 * `service-ab ab ROUNDS BLOCK CPU DAEMON`: two client processes (pinned to CPU, or not when
 * CPU < 0), one with a spawned daemon (DAEMON), one with the service, reading the same register
 * in alternating blocks of BLOCK single reads; medians and service/spawned. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "likwid_access.h"

static uint32_t reg = 0xC1;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int start(const char *daemon)
{
    uint64_t v;
    if (daemon)
        setenv("LIKWID_ACCESSD", daemon, 1);
    else
        unsetenv("LIKWID_ACCESSD");
    HPMinit();
    int rc = HPMaddThread(0);
    if (rc == 0)
        rc = HPMread(0, MSR_DEV, reg, &v);
    return rc;
}

static void child(int in, int out, const char *daemon, int block, int cpu)
{
    if (cpu >= 0) {
        cpu_set_t s;
        CPU_ZERO(&s);
        CPU_SET(cpu, &s);
        sched_setaffinity(0, sizeof s, &s);
    }
    if (start(daemon) != 0) {
        fprintf(stderr, "service-ab: %s: first read failed\n", daemon ? daemon : "service");
        _exit(1);
    }
    double *t = malloc((size_t)block * sizeof *t);
    uint64_t v;
    char c;
    while (t && read(in, &c, 1) == 1) {
        for (int i = 0; i < block; i++) {
            double a = now_us();
            HPMread(0, MSR_DEV, reg, &v);
            t[i] = now_us() - a;
        }
        if (write(out, t, (size_t)block * sizeof *t) < 0)
            break;
    }
    HPMfinalize();
    _exit(0);
}

static int ab(int rounds, int block, int cpu, const char *daemon)
{
    int in[2][2], out[2][2];
    pid_t pid[2];
    for (int k = 0; k < 2; k++) {
        if (pipe(in[k]) || pipe(out[k]))
            return 1;
        pid[k] = fork();
        if (pid[k] == 0) {
            close(in[k][1]);
            close(out[k][0]);
            if (k == 1) {
                close(in[0][1]);
                close(out[0][0]);
            }
            child(in[k][0], out[k][1], k == 0 ? daemon : NULL, block, cpu);
        }
        close(in[k][0]);
        close(out[k][1]);
    }
    size_t n = (size_t)rounds * (size_t)block;
    double *all[2] = { malloc(n * sizeof(double)), malloc(n * sizeof(double)) };
    if (!all[0] || !all[1])
        return 1;
    for (int r = 0; r < rounds; r++)
        for (int j = 0; j < 2; j++) {
            int k = (r + j) % 2; /* each goes first in turn */
            if (write(in[k][1], "x", 1) != 1)
                return 1;
            size_t need = (size_t)block * sizeof(double), got = 0;
            char *b = (char *)(all[k] + (size_t)r * (size_t)block);
            while (got < need) {
                ssize_t m = read(out[k][0], b + got, need - got);
                if (m <= 0) {
                    fprintf(stderr, "service-ab: a client died\n");
                    return 1;
                }
                got += (size_t)m;
            }
        }
    for (int k = 0; k < 2; k++) {
        close(in[k][1]);
        waitpid(pid[k], NULL, 0);
        qsort(all[k], n, sizeof(double), cmp);
    }
    char where[32] = "unpinned";
    if (cpu >= 0)
        snprintf(where, sizeof where, "on CPU %d", cpu);
    printf("single read, client %s: spawned %.2f us, service %.2f us, service/spawned %.3f\n", where,
           all[0][n / 2], all[1][n / 2], all[1][n / 2] / all[0][n / 2]);
    return 0;
}

static int connects(int n, int idle_ms)
{
    double *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return 1;
    for (int i = 0; i < n; i++) {
        double t = now_us();
        if (start(NULL) != 0) {
            fprintf(stderr, "service-ab: no session with the service\n");
            return 1;
        }
        v[i] = now_us() - t;
        HPMfinalize();
        if (idle_ms > 0) {
            struct timespec idle = { idle_ms / 1000, (long)(idle_ms % 1000) * 1000000L };
            nanosleep(&idle, NULL);
        }
    }
    qsort(v, (size_t)n, sizeof *v, cmp);
    if (idle_ms > 0)
        printf("connect to first reply, %d ms apart: %.1f us (median of %d)\n", idle_ms, v[n / 2], n);
    else
        printf("connect to first reply, back to back: %.1f us (median of %d)\n", v[n / 2], n);
    return 0;
}

int main(int argc, char **argv)
{
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "connect") == 0)
        return connects(atoi(argv[2]), argc == 4 ? atoi(argv[3]) : 0);
    if (argc == 6 && strcmp(argv[1], "ab") == 0)
        return ab(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argv[5]);
    fprintf(stderr, "usage: %s connect N [IDLE_MS] | ab ROUNDS BLOCK CPU DAEMON\n", argv[0]);
    return 2;
}
