/*
 * test_batch: HPMbatch runs many operations in one round trip, in order, each with its own
 * result; refused operations do not stop the others; oversized batches are refused; the
 * same holds in direct mode.
 */
#include "check.h"

static void mixed_batch(const char *mode)
{
    enum { N = 8 * 6 * 2 + 5 };
    HPMBatchOp ops[N];
    memset(ops, 0, sizeof ops);
    int n = 0;
    for (uint32_t c = 0; c < SIM_NCPUS; c++)
        for (uint32_t k = 0; k < NUM_COUNTERS; k++) {
            uint64_t v = (UINT64_C(0xA0000) + (c << 8) + k) & CTR_MASK;
            ops[n++] = (HPMBatchOp){ .cpu = c, .dev = MSR_DEV, .reg = REG_PERF_CTR(k), .op = HPM_BATCH_WRITE, .data = v };
            ops[n++] = (HPMBatchOp){ .cpu = c, .dev = MSR_DEV, .reg = REG_PERF_CTR(k), .op = HPM_BATCH_READ, .data = 0 };
        }
    int bad = n;
    ops[n++] = (HPMBatchOp){ .cpu = 0, .dev = MSR_DEV, .reg = REG_SYSCFG, .op = HPM_BATCH_WRITE, .data = 1 };
    ops[n++] = (HPMBatchOp){ .cpu = 1, .dev = MSR_DEV, .reg = REG_EFER, .op = HPM_BATCH_READ };
    ops[n++] = (HPMBatchOp){ .cpu = 99, .dev = MSR_DEV, .reg = REG_PERF_CTR(0), .op = HPM_BATCH_READ };
    ops[n++] = (HPMBatchOp){ .cpu = 0, .dev = 999, .reg = REG_PERF_CTR(0), .op = HPM_BATCH_READ };
    ops[n++] = (HPMBatchOp){ .cpu = 0, .dev = MSR_DEV, .reg = REG_PERF_CTR(0), .op = 7 };
    /* Refused operations sit at the end; move two into the middle to show order does not matter. */
    HPMBatchOp t = ops[3];
    ops[3] = ops[bad];
    ops[bad] = t;

    int rc = HPMbatch(ops, (uint32_t)n);
    CHECK(rc == 5, "%s: HPMbatch returned %d, want 5 failed operations", mode, rc);
    for (int i = 0; i < n; i++) {
        const HPMBatchOp *o = &ops[i];
        int want = 0;
        if (o->reg == REG_SYSCFG || o->reg == REG_EFER)
            want = -EPERM;
        else if (o->cpu == 99)
            want = -ERANGE;
        else if (o->dev == 999)
            want = -EFAULT;
        else if (o->op == 7)
            want = -EINVAL;
        CHECK_RC(o->result, want, "%s: op %d (cpu %u reg 0x%x op %u)", mode, i, o->cpu, o->reg, o->op);
        if (want == 0 && o->op == HPM_BATCH_READ) {
            uint64_t expect = (UINT64_C(0xA0000) + (o->cpu << 8) + (o->reg - REG_PERF_CTR(0)) / 2) & CTR_MASK;
            CHECK_U64(o->data, expect, "%s: read after write in the same batch, op %d", mode, i);
            CHECK_FILE(o->cpu, o->reg, expect, "%s: register file after the batch", mode);
        }
    }
    CHECK_FILE(0, REG_SYSCFG, 0, "%s: SYSCFG untouched", mode);
}

/* Every operation passes the library's checks and the daemon refuses two: each reply is taken
 * in order (the library's path for a batch it refused nothing of), a refusal costs only its
 * own operation, and a read after a refusal gets its own value. */
static void daemon_refusals_only(const char *mode)
{
    HPMBatchOp ops[] = {
        { .cpu = 0, .dev = MSR_DEV, .reg = REG_PERF_CTR(0), .op = HPM_BATCH_WRITE, .data = 0x1234 },
        { .cpu = 1, .dev = MSR_DEV, .reg = REG_EFER, .op = HPM_BATCH_READ, .data = 77 },
        { .cpu = 0, .dev = MSR_DEV, .reg = REG_PERF_CTR(0), .op = HPM_BATCH_READ },
        { .cpu = 0, .dev = MSR_DEV, .reg = REG_SYSCFG, .op = HPM_BATCH_WRITE, .data = 1 },
        { .cpu = 1, .dev = MSR_DEV, .reg = REG_PERF_CTR(1), .op = HPM_BATCH_READ },
    };
    int rc = HPMbatch(ops, 5);
    CHECK(rc == 2, "%s: HPMbatch returned %d, want 2 failed operations", mode, rc);
    int want[] = { 0, -EPERM, 0, -EPERM, 0 };
    for (int i = 0; i < 5; i++)
        CHECK_RC(ops[i].result, want[i], "%s: op %d of a batch the library refused nothing of", mode, i);
    CHECK_U64(ops[1].data, 77, "%s: a refused read leaves data alone", mode);
    CHECK_U64(ops[2].data, 0x1234, "%s: read after a refused read", mode);
    uint64_t v = 0;
    CHECK_RC(HPMread(1, MSR_DEV, REG_PERF_CTR(1), &v), 0, "%s: single read", mode);
    CHECK_U64(ops[4].data, v, "%s: read after a refused write", mode);
    CHECK_FILE(0, REG_SYSCFG, 0, "%s: SYSCFG untouched", mode);
}

static void big_batches(const char *mode)
{
    size_t max = HPM_BATCH_MAX;
    HPMBatchOp *ops = calloc(max + 1, sizeof *ops);
    CHECK(ops != NULL, "calloc");
    if (!ops)
        return;
    for (size_t i = 0; i <= max; i++)
        ops[i] = (HPMBatchOp){ .cpu = (uint32_t)(i % SIM_NCPUS), .dev = MSR_DEV, .reg = REG_PERF_CTR(i % NUM_COUNTERS), .op = HPM_BATCH_READ };
    double t0 = now_ms();
    int rc = HPMbatch(ops, 30000);
    printf("%s: 30000 reads in one call: %.1f ms\n", mode, now_ms() - t0);
    CHECK(rc == 0, "%s: 30000-operation batch returned %d", mode, rc);
    rc = HPMbatch(ops, (uint32_t)max);
    CHECK(rc == 0, "%s: HPM_BATCH_MAX-operation batch returned %d", mode, rc);
    ops[0].result = 12345;
    rc = HPMbatch(ops, (uint32_t)max + 1);
    CHECK_RC(rc, -E2BIG, "%s: oversized batch", mode);
    CHECK(ops[0].result == 12345, "%s: an oversized batch must not touch the operations", mode);
    free(ops);
    CHECK_RC(HPMbatch(NULL, 5), -EFAULT, "%s: NULL ops", mode);
    CHECK_RC(HPMbatch(NULL, 0), 0, "%s: empty batch", mode);
}

/* Threads of a process: entries in /proc/PID/task. */
static int daemon_threads(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    return count_dir_entries(path);
}

int main(void)
{
    guard_alarm(120);
    start_session(SIM_NCPUS);
    mixed_batch("daemon");
    daemon_refusals_only("daemon");
    big_batches("daemon");
    uint64_t v = 0;
    CHECK_RC(HPMread(2, MSR_DEV, REG_PERF_CTR(1), &v), 0, "single reads still work after batches");
    HPMfinalize();

    /* Pinned per-CPU workers (used on kernel msr devices; forced here on register stores). */
    setenv("LIKWID_ACCESS_WORKERS", "1", 1);
    start_session(SIM_NCPUS);
    mixed_batch("workers");
    daemon_refusals_only("workers");
    big_batches("workers");
    int threads = daemon_threads(HPMdaemonPid());
    CHECK(threads == (int)SIM_NCPUS + 1, "daemon has %d threads, want one worker per CPU plus the main thread", threads);
    HPMfinalize();
    unsetenv("LIKWID_ACCESS_WORKERS");

    HPMmode(ACCESSMODE_DIRECT);
    start_session(SIM_NCPUS);
    CHECK(find_daemon() < 0, "direct mode started a daemon");
    mixed_batch("direct");
    daemon_refusals_only("direct");
    big_batches("direct");
    HPMfinalize();
    return test_result("test_batch");
}
