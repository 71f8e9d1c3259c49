/* A scripted client of the node's service for service.sh: runs its arguments as steps, each
 * checked, and exits 0 only when every step got what it expected.
 *   add CPU RC              HPMaddThread(CPU) returns RC (the first one opens the session)
 *   w CPU REG VALUE RC      HPMwrite returns RC
 *   r CPU REG RC [VALUE]    HPMread returns RC (and reads VALUE)
 *   touch PATH              creates PATH (tells the script a step is done)
 *   wait PATH               waits (at most 20 s) until PATH exists
 *   b CPU REG VALUE N RC    one HPMbatch: a write of VALUE, then N-1 reads of REG; RC operations
 *                           fail, and with RC 0 every read gives VALUE
 *   time CPU REG N          prints the time of the first HPMaddThread (the session's start) and
 *                           the median of 5 runs of N reads (a figure, never a failure)
 *   pid                     HPMdaemonPid() is the service's pid (from $SERVICE_PID)
 *   crash                   exits at once without HPMfinalize (SIGKILL of itself)
 *   fin                     HPMfinalize (EXIT: registers kept as programmed)
 * Numbers are decimal or 0x hex; RC is 0 or a negative errno. */
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "likwid_access.h"

static unsigned long long num(const char *s)
{
    return strtoull(s, NULL, 0);
}

static int fail(int step, const char *what, long long got, long long want)
{
    fprintf(stderr, "service_client pid %d uid %d: step %d (%s): got %lld, want %lld\n", (int)getpid(),
            (int)getuid(), step, what, got, want);
    return 1;
}

int main(int argc, char **argv)
{
    int bad = 0;
    for (int i = 1; i < argc;) {
        const char *op = argv[i];
        int step = i;
        if (!strcmp(op, "add") && i + 2 < argc) {
            int rc = HPMaddThread((uint32_t)num(argv[i + 1]));
            if (rc != atoi(argv[i + 2]))
                bad |= fail(step, "add", rc, atoi(argv[i + 2]));
            i += 3;
        } else if (!strcmp(op, "w") && i + 4 < argc) {
            int rc = HPMwrite((uint32_t)num(argv[i + 1]), MSR_DEV, (uint32_t)num(argv[i + 2]), num(argv[i + 3]));
            if (rc != atoi(argv[i + 4]))
                bad |= fail(step, "write", rc, atoi(argv[i + 4]));
            i += 5;
        } else if (!strcmp(op, "r") && i + 3 < argc) {
            uint64_t v = 0;
            int rc = HPMread((uint32_t)num(argv[i + 1]), MSR_DEV, (uint32_t)num(argv[i + 2]), &v);
            if (rc != atoi(argv[i + 3]))
                bad |= fail(step, "read", rc, atoi(argv[i + 3]));
            i += 4;
            if (i < argc && (argv[i][0] >= '0' && argv[i][0] <= '9')) {
                if (rc == 0 && v != num(argv[i]))
                    bad |= fail(step, "read value", (long long)v, (long long)num(argv[i]));
                i++;
            }
        } else if (!strcmp(op, "b") && i + 5 < argc) {
            uint32_t n = (uint32_t)num(argv[i + 4]);
            HPMBatchOp *ops = calloc(n ? n : 1, sizeof *ops);
            if (!ops)
                return 2;
            for (uint32_t k = 0; k < n; k++) {
                ops[k].cpu = (uint32_t)num(argv[i + 1]);
                ops[k].dev = MSR_DEV;
                ops[k].reg = (uint32_t)num(argv[i + 2]);
                ops[k].op = k == 0 ? HPM_BATCH_WRITE : HPM_BATCH_READ;
                ops[k].data = k == 0 ? num(argv[i + 3]) : 0;
            }
            int rc = HPMbatch(ops, n);
            if (rc != atoi(argv[i + 5]))
                bad |= fail(step, "batch", rc, atoi(argv[i + 5]));
            for (uint32_t k = 1; rc == 0 && k < n; k++)
                if (ops[k].result != 0 || ops[k].data != num(argv[i + 3])) {
                    bad |= fail(step, "batch read", (long long)ops[k].data, (long long)num(argv[i + 3]));
                    break;
                }
            free(ops);
            i += 6;
        } else if (!strcmp(op, "time") && i + 3 < argc) {
            uint32_t cpu = (uint32_t)num(argv[i + 1]), reg = (uint32_t)num(argv[i + 2]);
            long n = (long)num(argv[i + 3]);
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            int rc = HPMaddThread(cpu);
            clock_gettime(CLOCK_MONOTONIC, &b);
            double start_us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3;
            double runs[5];
            for (int r = 0; r < 5 && rc == 0; r++) {
                uint64_t v;
                clock_gettime(CLOCK_MONOTONIC, &a);
                for (long k = 0; k < n; k++)
                    rc |= HPMread(cpu, MSR_DEV, reg, &v);
                clock_gettime(CLOCK_MONOTONIC, &b);
                runs[r] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)n;
            }
            for (int x = 0; x < 5; x++)
                for (int y = x + 1; y < 5; y++)
                    if (runs[y] < runs[x]) {
                        double t = runs[x];
                        runs[x] = runs[y];
                        runs[y] = t;
                    }
            if (rc != 0)
                bad |= fail(step, "time", rc, 0);
            else
                printf("start_us=%.0f read_ns_median=%.0f\n", start_us, runs[2]);
            i += 4;
        } else if (!strcmp(op, "touch") && i + 1 < argc) {
            FILE *f = fopen(argv[i + 1], "w");
            if (f)
                fclose(f);
            i += 2;
        } else if (!strcmp(op, "wait") && i + 1 < argc) {
            int waited = 0;
            while (access(argv[i + 1], F_OK) != 0 && waited < 2000) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
                waited++;
            }
            if (waited >= 2000)
                bad |= fail(step, argv[i + 1], 0, 1);
            i += 2;
        } else if (!strcmp(op, "pid")) {
            const char *want = getenv("SERVICE_PID");
            int pid = HPMdaemonPid();
            if (!want || pid != atoi(want))
                bad |= fail(step, "HPMdaemonPid", pid, want ? atoi(want) : -1);
            i += 1;
        } else if (!strcmp(op, "crash")) {
            fflush(NULL);
            kill(getpid(), SIGKILL);
            return 2;
        } else if (!strcmp(op, "fin")) {
            HPMfinalize();
            i += 1;
        } else {
            fprintf(stderr, "service_client: bad step `%s` at %d\n", op, i);
            return 2;
        }
    }
    return bad;
}
