/*
 * test_write_read: 8 CPUs, daemon mode (the default).  Write a distinct
 * 48-bit value to each of the 6 PERF_CTRn on every cpu, then read them all
 * back through HPMread and straight from DIR/dev/cpu/N/msr (offset 8*R).
 * The interleaved PERF_CTLn (never written) must still be 0 in the files,
 * which catches offset mistakes (offset R instead of 8*R overlaps them).
 */
#include "check.h"

static uint64_t value_for(uint32_t cpu, int k)
{
    return (((uint64_t)(cpu + 1) << 40) | ((uint64_t)(k + 1) << 36) |
            (UINT64_C(0x0ABCDE00) + cpu * 16u + (uint64_t)k)) & CTR_MASK;
}

int main(void)
{
    guard_alarm(60);
    if (start_session(SIM_NCPUS) != 0) {
        HPMfinalize();
        return test_result("test_write_read");
    }

    /* Fresh registers read as 0. */
    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        uint64_t v = 0xDEADBEEF;
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(0), &v), 0, "initial read cpu %u", (unsigned)c);
        CHECK_U64(v, 0, "initial PERF_CTR0 cpu %u", (unsigned)c);
    }

    /* Write everything first, then read everything: catches cross-talk. */
    for (uint32_t c = 0; c < SIM_NCPUS; c++)
        for (int k = 0; k < NUM_COUNTERS; k++)
            CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(k), value_for(c, k)), 0,
                     "HPMwrite cpu %u PERF_CTR%d", (unsigned)c, k);

    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        for (int k = 0; k < NUM_COUNTERS; k++) {
            uint64_t v = 0xDEADBEEF;
            int rc = HPMread(c, MSR_DEV, REG_PERF_CTR(k), &v);
            CHECK_RC(rc, 0, "HPMread cpu %u PERF_CTR%d", (unsigned)c, k);
            if (rc == 0)
                CHECK_U64(v, value_for(c, k), "HPMread cpu %u PERF_CTR%d", (unsigned)c, k);
            CHECK_FILE(c, REG_PERF_CTR(k), value_for(c, k), "after HPMwrite PERF_CTR%d", k);
            CHECK_FILE(c, REG_PERF_CTL(k), 0, "untouched PERF_CTL%d", k);
        }
    }

    /* Overwrite once more (value changes are seen, not cached). */
    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        uint64_t nv = (~value_for(c, 0)) & CTR_MASK;
        uint64_t v = 0;
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(0), nv), 0, "rewrite cpu %u", (unsigned)c);
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(0), &v), 0, "reread cpu %u", (unsigned)c);
        CHECK_U64(v, nv, "reread cpu %u PERF_CTR0", (unsigned)c);
        CHECK_FILE(c, REG_PERF_CTR(0), nv, "after rewrite");
    }

    /* A value put into the file behind the library's back is read as is. */
    FILE_PUT(3, REG_PERF_CTR(5), UINT64_C(0x0000123456789ABC));
    {
        uint64_t v = 0;
        CHECK_RC(HPMread(3, MSR_DEV, REG_PERF_CTR(5), &v), 0, "read of externally set value");
        CHECK_U64(v, UINT64_C(0x0000123456789ABC), "externally set value cpu 3 PERF_CTR5");
    }

    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_write_read");
}
