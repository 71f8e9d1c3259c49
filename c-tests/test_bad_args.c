/*
 * test_bad_args: argument errors on an 8-CPU machine, daemon mode.
 *   cpu 8, cpu 0xFFFFFFFF            -> -ERANGE (not on the machine)
 *   cpu 4..7 present but not added   -> -ENODEV
 *   NULL data, dev 999, dev -5       -> -EFAULT
 *   HPMcheck(MSR_DEV, added cpu) == 1, HPMcheck(MSR_DEV, 99) == 0
 * Afterwards the daemon must still serve (LIKWID 5.2's daemon died on a
 * cpu >= CPU count).
 */
#include "check.h"

#define NADDED 4u

int main(void)
{
    guard_alarm(60);
    if (start_session(NADDED) != 0) {
        HPMfinalize();
        return test_result("test_bad_args");
    }

    uint64_t v = 0;
    const uint32_t bad_cpus[] = { 8u, 9u, 99u, 1024u, 0x7FFFFFFFu, 0xFFFFFFFFu };
    for (size_t i = 0; i < sizeof bad_cpus / sizeof bad_cpus[0]; i++) {
        uint32_t c = bad_cpus[i];
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(0), &v), -ERANGE, "HPMread cpu 0x%x", (unsigned)c);
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(0), 1), -ERANGE, "HPMwrite cpu 0x%x", (unsigned)c);
    }

    for (uint32_t c = NADDED; c < SIM_NCPUS; c++) {
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(0), &v), -ENODEV, "HPMread not-added cpu %u", (unsigned)c);
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(0), 1), -ENODEV, "HPMwrite not-added cpu %u", (unsigned)c);
        CHECK_FILE(c, REG_PERF_CTR(0), 0, "not-added cpu %u must not be written", (unsigned)c);
    }

    for (uint32_t c = 0; c < NADDED; c++) {
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(0), NULL), -EFAULT, "HPMread NULL data cpu %u", (unsigned)c);
        CHECK_RC(HPMread(c, 999, REG_PERF_CTR(0), &v), -EFAULT, "HPMread dev 999 cpu %u", (unsigned)c);
        CHECK_RC(HPMread(c, -5, REG_PERF_CTR(0), &v), -EFAULT, "HPMread dev -5 cpu %u", (unsigned)c);
        CHECK_RC(HPMwrite(c, 999, REG_PERF_CTR(0), 1), -EFAULT, "HPMwrite dev 999 cpu %u", (unsigned)c);
        CHECK_RC(HPMwrite(c, -5, REG_PERF_CTR(0), 1), -EFAULT, "HPMwrite dev -5 cpu %u", (unsigned)c);
        CHECK_FILE(c, REG_PERF_CTR(0), 0, "bad-device writes must not touch cpu %u", (unsigned)c);
    }

    for (uint32_t c = 0; c < NADDED; c++)
        CHECK(HPMcheck(MSR_DEV, c) == 1, "HPMcheck(MSR_DEV, %u) = %d, expected 1", (unsigned)c,
              HPMcheck(MSR_DEV, c));
    CHECK(HPMcheck(MSR_DEV, 99) == 0, "HPMcheck(MSR_DEV, 99) = %d, expected 0", HPMcheck(MSR_DEV, 99));
    CHECK(HPMcheck(MSR_DEV, 0xFFFFFFFFu) == 0, "HPMcheck(MSR_DEV, 0xFFFFFFFF) = %d, expected 0",
          HPMcheck(MSR_DEV, 0xFFFFFFFFu));
    CHECK(HPMcheck(999, 0) == 0, "HPMcheck(999, 0) = %d, expected 0", HPMcheck(999, 0));
    CHECK(HPMcheck(-5, 0) == 0, "HPMcheck(-5, 0) = %d, expected 0", HPMcheck(-5, 0));

    /* Everything above must have left the daemon alive and serving. */
    for (uint32_t c = 0; c < NADDED; c++) {
        uint64_t w = UINT64_C(0x00005EED00000000) | c;
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(1), w), 0, "write after bad args cpu %u", (unsigned)c);
        v = 0;
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(1), &v), 0, "read after bad args cpu %u", (unsigned)c);
        CHECK_U64(v, w, "read after bad args cpu %u", (unsigned)c);
        CHECK_FILE(c, REG_PERF_CTR(1), w, "after bad args");
    }

    /* Adding cpus that are not on the machine fails with -ERANGE. */
    CHECK_RC(HPMaddThread(8), -ERANGE, "HPMaddThread(8)");
    CHECK_RC(HPMaddThread(0xFFFFFFFFu), -ERANGE, "HPMaddThread(0xFFFFFFFF)");

    /* Adding a cpu later makes it usable. */
    CHECK_RC(HPMaddThread(5), 0, "late HPMaddThread(5)");
    CHECK_RC(HPMwrite(5, MSR_DEV, REG_PERF_CTR(2), 77), 0, "write cpu 5 after late add");
    v = 0;
    CHECK_RC(HPMread(5, MSR_DEV, REG_PERF_CTR(2), &v), 0, "read cpu 5 after late add");
    CHECK_U64(v, 77, "read cpu 5 after late add");

    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_bad_args");
}
