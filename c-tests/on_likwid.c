/*
 * on_likwid: the part of the C API that plain LIKWID 5 records can carry, run through our
 * library against whichever daemon LIKWID_ACCESSD names: Debian's likwid-accessD (our library
 * detects it and speaks plain LIKWID 5, batches fall back to single records) or ours. Run by
 * on_likwid.sh in a private mount namespace on register-store files as /dev/cpu/N/msr;
 * LIKWID_TEST_STRIDE is the daemon's file layout (1: offset R, LIKWID's; 8: offset 8*R, ours),
 * so registers used here are at least 8 apart. LIKWID's daemon picks its register rules from
 * CPUID on the host, so the counters are the host vendor's (LIKWID_TEST_VENDOR=intel or amd).
 */
#include "check.h"
#include <pthread.h>

/* Two 48-bit counters at least 8 registers apart. AMD: PERF_CTR0 and L3 counter 0 (48
 * registers on); Intel: IA32_PMC0 and IA32_FIXED_CTR0. */
static uint32_t CTR0 = 0xC0010201u, CTR4 = 0xC0010231u;
static int stride = 8;

static uint64_t in_file(uint32_t cpu, uint32_t reg)
{
    char p[64];
    uint64_t v = 0;
    snprintf(p, sizeof p, "/dev/cpu/%u/msr", (unsigned)cpu);
    int fd = open(p, O_RDONLY);
    if (fd < 0 || pread(fd, &v, 8, (off_t)reg * stride) != 8)
        v = ~UINT64_C(0);
    if (fd >= 0)
        close(fd);
    return v;
}

static void *worker(void *arg)
{
    uint32_t cpu = (uint32_t)(uintptr_t)arg;
    uint64_t seed = 0x9E3779B97F4A7C15ULL ^ cpu;
    for (int i = 0; i < 2000; i++) {
        uint32_t reg = (i & 1) ? CTR4 : CTR0;
        uint64_t v = xorshift64(&seed) & CTR_MASK, got = 0;
        CHECK_RC(HPMwrite(cpu, MSR_DEV, reg, v), 0, "thread write cpu %u", (unsigned)cpu);
        CHECK_RC(HPMread(cpu, MSR_DEV, reg, &got), 0, "thread read cpu %u", (unsigned)cpu);
        CHECK_U64(got, v, "thread cpu %u iteration %d", (unsigned)cpu, i);
    }
    return NULL;
}

int main(void)
{
    guard_alarm(60);
    const char *s = getenv("LIKWID_TEST_STRIDE");
    stride = s ? atoi(s) : 8;
    const char *vendor = getenv("LIKWID_TEST_VENDOR");
    if (vendor && strcmp(vendor, "intel") == 0) {
        CTR0 = 0xC1u;
        CTR4 = 0x309u;
    }
    CHECK(start_session(2) == 0, "session");
    printf("daemon pid %d\n", HPMdaemonPid());
    for (uint32_t c = 0; c < 2; c++) {
        CHECK_RC(HPMwrite(c, MSR_DEV, CTR0, 0x100 + c), 0, "write CTR0 cpu %u", (unsigned)c);
        CHECK_RC(HPMwrite(c, MSR_DEV, CTR4, 0x400 + c), 0, "write CTR4 cpu %u", (unsigned)c);
        uint64_t v = 0;
        CHECK_RC(HPMread(c, MSR_DEV, CTR0, &v), 0, "read CTR0");
        CHECK_U64(v, 0x100 + c, "CTR0 cpu %u", (unsigned)c);
        CHECK_U64(in_file(c, CTR0), 0x100 + c, "CTR0 in the file of cpu %u", (unsigned)c);
        CHECK_U64(in_file(c, CTR4), 0x400 + c, "CTR4 in the file of cpu %u", (unsigned)c);
    }
    CHECK(HPMcheck(MSR_DEV, 1) == 1, "HPMcheck(MSR_DEV, 1)");
    CHECK_RC(HPMread(2, MSR_DEV, CTR0, &(uint64_t){ 0 }), -ERANGE, "cpu 2 of 2");

    HPMBatchOp ops[4] = {
        { .cpu = 0, .dev = MSR_DEV, .reg = CTR0, .op = HPM_BATCH_WRITE, .data = 0xB0 },
        { .cpu = 1, .dev = MSR_DEV, .reg = CTR4, .op = HPM_BATCH_WRITE, .data = 0xB1 },
        { .cpu = 0, .dev = MSR_DEV, .reg = CTR0, .op = HPM_BATCH_READ },
        { .cpu = 1, .dev = MSR_DEV, .reg = CTR4, .op = HPM_BATCH_READ },
    };
    CHECK_RC(HPMbatch(ops, 4), 0, "batch");
    CHECK_U64(ops[2].data, 0xB0, "batch read back cpu 0");
    CHECK_U64(ops[3].data, 0xB1, "batch read back cpu 1");

    pthread_t t[2];
    for (uintptr_t c = 0; c < 2; c++)
        pthread_create(&t[c], NULL, worker, (void *)c);
    for (int c = 0; c < 2; c++)
        pthread_join(t[c], NULL);

    pid_t child = fork();
    if (child == 0) {
        uint64_t v = 0;
        int rc = HPMread(1, MSR_DEV, CTR0, &v);
        HPMfinalize();
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "forked child read through its own daemon: %d", status);
    CHECK_RC(HPMwrite(0, MSR_DEV, CTR0, 7), 0, "parent still served after the fork");

    CHECK(kill(HPMdaemonPid(), SIGKILL) == 0, "kill the daemon");
    sleep_ms(50);
    uint64_t v = 0;
    double t0 = now_ms();
    CHECK_RC(HPMread(0, MSR_DEV, CTR0, &v), -ENOTCONN, "read after the daemon died");
    CHECK(now_ms() - t0 < 2000, "the failed read took %.0f ms", now_ms() - t0);
    HPMfinalize();
    return test_result("on_likwid");
}
