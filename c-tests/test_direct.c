/*
 * test_direct: HPMmode(ACCESSMODE_DIRECT) before HPMinit makes the library
 * use the register files in-process, with the same policy.  No child process
 * may ever be started (LIKWID_ACCESSD is pointed at a missing file to make
 * any launch attempt visible as well).
 */
#include "check.h"

#define NADDED 4u

int main(void)
{
    guard_alarm(60);
    setenv("LIKWID_ACCESSD", "/nonexistent/likwid-accessD", 1);

    HPMmode(ACCESSMODE_DIRECT);
    CHECK_RC(HPMinit(), 0, "HPMinit (direct)");
    CHECK_NO_CHILDREN("after HPMinit");
    CHECK(HPMinitialized() == 1, "HPMinitialized() = %d after HPMinit", HPMinitialized());
    for (uint32_t c = 0; c < NADDED; c++) {
        CHECK_RC(HPMaddThread(c), 0, "HPMaddThread(%u) (direct)", (unsigned)c);
        CHECK_NO_CHILDREN("after HPMaddThread(%u)", (unsigned)c);
    }

    /* write / read / file */
    for (uint32_t c = 0; c < NADDED; c++) {
        for (int k = 0; k < NUM_COUNTERS; k++) {
            uint64_t val = (((uint64_t)(c + 1) << 44) | ((uint64_t)k << 20) | 0xD1u) & CTR_MASK;
            uint64_t v = 0;
            CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(k), val), 0, "write cpu %u PERF_CTR%d", (unsigned)c, k);
            CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(k), &v), 0, "read cpu %u PERF_CTR%d", (unsigned)c, k);
            CHECK_U64(v, val, "readback cpu %u PERF_CTR%d", (unsigned)c, k);
            CHECK_FILE(c, REG_PERF_CTR(k), val, "direct write PERF_CTR%d", k);
            CHECK_FILE(c, REG_PERF_CTL(k), 0, "untouched PERF_CTL%d", k);
        }
    }

    /* masked HWCR */
    {
        const uint64_t old = UINT64_C(0x0000000000000011);
        const uint64_t expect = old | HWCR_MASK;
        uint64_t v = 0;
        FILE_PUT(1, REG_HWCR, old);
        CHECK_RC(HPMwrite(1, MSR_DEV, REG_HWCR, ~UINT64_C(0)), 0, "HWCR write ~0");
        CHECK_RC(HPMread(1, MSR_DEV, REG_HWCR, &v), 0, "HWCR read");
        CHECK_U64(v, expect, "HWCR after masked write of ~0");
        CHECK_FILE(1, REG_HWCR, expect, "HWCR after masked write of ~0");
        CHECK_RC(HPMwrite(1, MSR_DEV, REG_HWCR, 0), 0, "HWCR write 0");
        CHECK_FILE(1, REG_HWCR, old, "HWCR after masked write of 0");
    }

    /* denied */
    {
        uint64_t v = 0;
        FILE_PUT(2, REG_SYSCFG, UINT64_C(0x740000));
        FILE_PUT(2, REG_EFER, UINT64_C(0xD01));
        FILE_PUT(2, REG_TSC, UINT64_C(0x99));
        CHECK_RC(HPMwrite(2, MSR_DEV, REG_SYSCFG, ~UINT64_C(0)), -EPERM, "SYSCFG write (direct)");
        CHECK_FILE(2, REG_SYSCFG, UINT64_C(0x740000), "SYSCFG after denied write");
        CHECK_RC(HPMread(2, MSR_DEV, REG_EFER, &v), -EPERM, "EFER read (direct)");
        CHECK_RC(HPMread(2, MSR_DEV, REG_BOGUS, &v), -EPERM, "0x1234 read (direct)");
        CHECK_RC(HPMwrite(2, MSR_DEV, REG_TSC, 0), -EPERM, "TSC write (direct)");
        CHECK_FILE(2, REG_TSC, UINT64_C(0x99), "TSC after denied write");
        v = 0;
        CHECK_RC(HPMread(2, MSR_DEV, REG_TSC, &v), 0, "TSC read (direct)");
        CHECK_U64(v, UINT64_C(0x99), "TSC read (direct)");
    }

    /* argument errors */
    {
        uint64_t v = 0;
        CHECK_RC(HPMread(8, MSR_DEV, REG_PERF_CTR(0), &v), -ERANGE, "read cpu 8 (direct)");
        CHECK_RC(HPMread(0xFFFFFFFFu, MSR_DEV, REG_PERF_CTR(0), &v), -ERANGE, "read cpu 0xFFFFFFFF (direct)");
        CHECK_RC(HPMwrite(8, MSR_DEV, REG_PERF_CTR(0), 1), -ERANGE, "write cpu 8 (direct)");
        CHECK_RC(HPMread(5, MSR_DEV, REG_PERF_CTR(0), &v), -ENODEV, "read not-added cpu 5 (direct)");
        CHECK_RC(HPMwrite(5, MSR_DEV, REG_PERF_CTR(0), 1), -ENODEV, "write not-added cpu 5 (direct)");
        CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), NULL), -EFAULT, "NULL data (direct)");
        CHECK_RC(HPMread(0, 999, REG_PERF_CTR(0), &v), -EFAULT, "dev 999 (direct)");
        CHECK_RC(HPMwrite(0, -5, REG_PERF_CTR(0), 1), -EFAULT, "dev -5 (direct)");
        CHECK(HPMcheck(MSR_DEV, 0) == 1, "HPMcheck(MSR_DEV, 0) = %d (direct)", HPMcheck(MSR_DEV, 0));
        CHECK(HPMcheck(MSR_DEV, 99) == 0, "HPMcheck(MSR_DEV, 99) = %d (direct)", HPMcheck(MSR_DEV, 99));
    }

    CHECK_NO_CHILDREN("before HPMfinalize");
    HPMfinalize();
    CHECK(HPMinitialized() == 0, "HPMinitialized() = %d after HPMfinalize", HPMinitialized());
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_direct");
}
