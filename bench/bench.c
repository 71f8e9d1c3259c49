/* make bench: side-by-side medians from one run on one machine (see bench/bench.sh).
 * Each round starts our daemon and LIKWID's (when given) through the same client code, reads
 * the same register of the same register-store file, and times a direct pread of it: the
 * three are interleaved round by round so the machine's noise falls on all of them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "likwid_access.h"

#define REG 0xC0010201u /* PERF_CTR0: readable under both daemons' policies */
enum { ROUNDS = 15, SINGLES = 2000, BATCHES = 40, MAXS = ROUNDS * SINGLES };

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

typedef struct {
    double *v;
    int n;
} Samples;

static void add(Samples *s, double x) { s->v[s->n++] = x; }

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(Samples *s)
{
    if (s->n == 0)
        return 0.0 / 0.0;
    qsort(s->v, (size_t)s->n, sizeof(double), cmp);
    return s->n % 2 ? s->v[s->n / 2] : (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
}

static Samples make(int n)
{
    Samples s = { calloc((size_t)n, sizeof(double)), 0 };
    if (!s.v)
        exit(2);
    return s;
}

static long vm_hwm_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

typedef struct {
    Samples single, startup, rss, b64, b1024;
} Daemon;

/* One session with the daemon at `path`: start-up to first read, single reads, batches, RSS. */
static int session(const char *path, Daemon *d, int batches)
{
    setenv("LIKWID_ACCESSD", path, 1);
    uint64_t v;
    double t0 = now_us();
    HPMinit();
    int rc = HPMaddThread(0);
    if (rc == 0)
        rc = HPMread(0, MSR_DEV, REG, &v);
    if (rc != 0) {
        fprintf(stderr, "bench: %s: first read failed: %d\n", path, rc);
        HPMfinalize();
        return rc;
    }
    add(&d->startup, (now_us() - t0) / 1000.0);
    for (int i = 0; i < SINGLES; i++) {
        double a = now_us();
        HPMread(0, MSR_DEV, REG, &v);
        add(&d->single, now_us() - a);
    }
    static HPMBatchOp ops[1024];
    for (int size = 64; batches && size <= 1024; size *= 16) {
        for (int i = 0; i < size; i++)
            ops[i] = (HPMBatchOp){ .cpu = 0, .dev = MSR_DEV, .reg = REG, .op = HPM_BATCH_READ };
        for (int i = 0; i < BATCHES; i++) {
            double a = now_us();
            if (HPMbatch(ops, (uint32_t)size) != 0)
                fprintf(stderr, "bench: batch of %d had failures\n", size);
            add(size == 64 ? &d->b64 : &d->b1024, (now_us() - a) / size);
        }
    }
    add(&d->rss, (double)vm_hwm_kb(HPMdaemonPid()) / 1024.0);
    HPMfinalize();
    return 0;
}

static void row(const char *what, double value, const char *unit, const char *ratio)
{
    printf("| %-44s | %10.2f %-2s | %s |\n", what, value, unit, ratio);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MSR_FILE OUR_DAEMON [LIKWID_DAEMON]\n", argv[0]);
        return 2;
    }
    const char *file = argv[1], *ours_path = argv[2], *likwid_path = argc > 3 ? argv[3] : NULL;
    int fd = open(file, O_RDONLY);
    if (fd < 0) {
        perror(file);
        return 2;
    }
    /* The register store holds R at 8*R; LIKWID's daemon reads offset R of any file. Both
     * offsets cost the same pread; the floor uses ours. */
    off_t off = (off_t)REG * 8;
    Daemon ours = { make(MAXS), make(ROUNDS), make(ROUNDS), make(ROUNDS * BATCHES), make(ROUNDS * BATCHES) };
    Daemon theirs = { make(MAXS), make(ROUNDS), make(ROUNDS), make(1), make(1) };
    Samples direct = make(MAXS);
    for (int r = 0; r < ROUNDS; r++) {
        if (session(ours_path, &ours, 1) != 0)
            return 1;
        if (likwid_path && session(likwid_path, &theirs, 0) != 0)
            return 1;
        for (int i = 0; i < SINGLES; i++) {
            uint64_t v;
            double a = now_us();
            if (pread(fd, &v, 8, off) != 8)
                return 1;
            add(&direct, now_us() - a);
        }
    }
    double d = median(&direct), os = median(&ours.single), ob64 = median(&ours.b64), ob1k = median(&ours.b1024);
    double ost = median(&ours.startup), orss = median(&ours.rss);
    double ts = median(&theirs.single), tst = median(&theirs.startup), trss = median(&theirs.rss);
    char buf[160];
    printf("Medians of %d rounds (%d single reads, %d batches of 64 and of 1024 per round); "
           "ratios from the same run.\n\n", ROUNDS, SINGLES, BATCHES);
    printf("| %-44s | %13s | %s |\n|---|---:|---|\n", "measurement", "median", "ratio (target)");
    row("direct pread of the register (floor)", d, "us", "1.00x");
    snprintf(buf, sizeof buf, "%.1fx the pread", os / d);
    row("ours: single read through likwid-accessD", os, "us", buf);
    if (likwid_path) {
        snprintf(buf, sizeof buf, "ours/LIKWID %.2f (<= 1.0)", os / ts);
        row("LIKWID 5.2.2: single read, same client code", ts, "us", buf);
    }
    snprintf(buf, sizeof buf, likwid_path ? "LIKWID single/this %.1fx (>= 25x)" : "%.1fx the pread", likwid_path ? ts / ob64 : ob64 / d);
    row("ours: batch of 64 reads, per read", ob64, "us", buf);
    snprintf(buf, sizeof buf, "%.2fx the pread (<= 2x)", ob1k / d);
    row("ours: batch of 1024 reads, per read", ob1k, "us", buf);
    row("ours: start-up to first read", ost, "ms", "");
    if (likwid_path) {
        snprintf(buf, sizeof buf, "ours/LIKWID %.2f (<= 0.33)", ost / tst);
        row("LIKWID 5.2.2: start-up to first read", tst, "ms", buf);
    }
    row("ours: daemon peak RSS (VmHWM)", orss, "MB", "");
    if (likwid_path) {
        snprintf(buf, sizeof buf, "ours/LIKWID %.2f (<= 1.0)", orss / trss);
        row("LIKWID 5.2.2: daemon peak RSS (VmHWM)", trss, "MB", buf);
    } else {
        printf("\nLIKWID column SKIPPED: no LIKWID daemon given (install Debian's likwid and run as root).\n");
    }
    return 0;
}
