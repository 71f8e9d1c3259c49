/*
 * test_threads: 8 pthreads x 10 000 mixed operations, daemon mode.
 * Thread t owns cpu t and its 6 PERF_CTRs.  It calls HPMaddThread(t) itself
 * (main only did HPMinit + HPMaddThread(0)), then loops:
 *   ~60%  write a pseudo-random 48-bit value to a counter, read it back
 *   ~15%  read a random own counter, compare with the last value written
 *   ~15%  read TSC (expect 0)
 *   ~10%  write TSC or SYSCFG (expect -EPERM)
 * Every mismatch / unexpected return code is counted and reported.  At the
 * end main checks every counter through HPMread and in the register files.
 */
#include "check.h"

#include <pthread.h>

#define NTHREADS 8
#define NOPS 10000

struct thread_state {
    uint32_t cpu;
    uint64_t last[NUM_COUNTERS];
    long ops;
    long mismatches;
    long bad_rc;
    long reported;
};

static void report(struct thread_state *ts, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void report(struct thread_state *ts, const char *fmt, ...)
{
    /* print the first 20 problems of each thread, count all of them */
    if (ts->reported++ >= 20)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "thread cpu %u: %s\n", (unsigned)ts->cpu, msg);
}

static void *worker(void *arg)
{
    struct thread_state *ts = arg;
    uint32_t cpu = ts->cpu;
    uint64_t seed = UINT64_C(0x9E3779B97F4A7C15) ^ ((uint64_t)(cpu + 1) * UINT64_C(0x100000001B3));
    uint64_t v;
    int rc;

    rc = HPMaddThread(cpu);
    if (rc != 0) {
        ts->bad_rc++;
        report(ts, "HPMaddThread(%u) returned %s", (unsigned)cpu, rc_name(rc));
        return NULL;
    }

    for (long i = 0; i < NOPS; i++) {
        uint64_t r = xorshift64(&seed);
        unsigned sel = (unsigned)(r % 100u);
        int k = (int)((r >> 8) % NUM_COUNTERS);
        ts->ops++;
        if (sel < 60) {
            uint64_t val = xorshift64(&seed) & CTR_MASK;
            rc = HPMwrite(cpu, MSR_DEV, REG_PERF_CTR(k), val);
            if (rc != 0) {
                ts->bad_rc++;
                report(ts, "op %ld: HPMwrite PERF_CTR%d returned %s", i, k, rc_name(rc));
                continue;
            }
            ts->last[k] = val;
            v = ~UINT64_C(0);
            rc = HPMread(cpu, MSR_DEV, REG_PERF_CTR(k), &v);
            if (rc != 0) {
                ts->bad_rc++;
                report(ts, "op %ld: HPMread PERF_CTR%d returned %s", i, k, rc_name(rc));
            } else if (v != val) {
                ts->mismatches++;
                report(ts, "op %ld: PERF_CTR%d wrote 0x%012" PRIx64 " read 0x%016" PRIx64, i, k, val, v);
            }
        } else if (sel < 75) {
            v = ~UINT64_C(0);
            rc = HPMread(cpu, MSR_DEV, REG_PERF_CTR(k), &v);
            if (rc != 0) {
                ts->bad_rc++;
                report(ts, "op %ld: HPMread PERF_CTR%d returned %s", i, k, rc_name(rc));
            } else if (v != ts->last[k]) {
                ts->mismatches++;
                report(ts, "op %ld: PERF_CTR%d last written 0x%012" PRIx64 " read 0x%016" PRIx64, i,
                       k, ts->last[k], v);
            }
        } else if (sel < 90) {
            v = 0;
            rc = HPMread(cpu, MSR_DEV, REG_TSC, &v);
            if (rc != 0) {
                ts->bad_rc++;
                report(ts, "op %ld: HPMread TSC returned %s", i, rc_name(rc));
            }
        } else {
            uint32_t reg = (sel & 1u) ? REG_TSC : REG_SYSCFG;
            rc = HPMwrite(cpu, MSR_DEV, reg, r);
            if (rc != -EPERM) {
                ts->bad_rc++;
                report(ts, "op %ld: denied HPMwrite 0x%x returned %s, expected -EPERM", i,
                       (unsigned)reg, rc_name(rc));
            }
        }
    }
    return NULL;
}

int main(void)
{
    guard_alarm(60);
    static struct thread_state st[NTHREADS];
    pthread_t th[NTHREADS];

    CHECK_RC(HPMinit(), 0, "HPMinit");
    CHECK_RC(HPMaddThread(0), 0, "HPMaddThread(0) in main");

    double t0 = now_ms();
    for (int t = 0; t < NTHREADS; t++) {
        st[t].cpu = (uint32_t)t;
        int e = pthread_create(&th[t], NULL, worker, &st[t]);
        CHECK(e == 0, "pthread_create %d: %s", t, strerror(e));
        if (e != 0) {
            HPMfinalize();
            return test_result("test_threads");
        }
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    double dt = now_ms() - t0;

    long ops = 0, mism = 0, bad = 0;
    for (int t = 0; t < NTHREADS; t++) {
        ops += st[t].ops;
        mism += st[t].mismatches;
        bad += st[t].bad_rc;
        if (st[t].mismatches || st[t].bad_rc)
            fprintf(stderr, "thread cpu %d: %ld mismatches, %ld unexpected return codes\n", t,
                    st[t].mismatches, st[t].bad_rc);
    }
    printf("%ld operations in %.0f ms (%.1f us per operation)\n", ops, dt,
           ops ? dt * 1000.0 / (double)ops : 0.0);
    CHECK(mism == 0, "%ld read-back mismatches in total", mism);
    CHECK(bad == 0, "%ld unexpected return codes in total", bad);
    CHECK(ops == (long)NTHREADS * NOPS, "only %ld of %ld operations ran", ops, (long)NTHREADS * NOPS);

    /* final state: each thread's last values, via the library and the files */
    for (int t = 0; t < NTHREADS; t++) {
        for (int k = 0; k < NUM_COUNTERS; k++) {
            uint64_t v = ~UINT64_C(0);
            CHECK_RC(HPMread((uint32_t)t, MSR_DEV, REG_PERF_CTR(k), &v), 0, "final read cpu %d", t);
            CHECK_U64(v, st[t].last[k], "final value cpu %d PERF_CTR%d", t, k);
            CHECK_FILE((uint32_t)t, REG_PERF_CTR(k), st[t].last[k], "final file PERF_CTR%d", k);
        }
    }

    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_threads");
}
