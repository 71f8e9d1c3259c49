/*
 * test_masked: HWCR (0xC0010015) has write mask 0x40000000 (bit 30 only).
 * A write stores (new & mask) | (old & ~mask).  Put a known value into the
 * register file first, write through the library, check HPMread and the file.
 * Neighbouring registers (R-1, R+1) must stay untouched.
 */
#include "check.h"

static void one_case(uint32_t cpu, uint64_t old, uint64_t newval)
{
    uint64_t expect = (newval & HWCR_MASK) | (old & ~HWCR_MASK);
    FILE_PUT(cpu, REG_HWCR, old);
    int rc = HPMwrite(cpu, MSR_DEV, REG_HWCR, newval);
    CHECK_RC(rc, 0, "HPMwrite HWCR cpu %u old 0x%016" PRIx64 " new 0x%016" PRIx64,
             (unsigned)cpu, old, newval);
    uint64_t v = 0xDEADBEEF;
    rc = HPMread(cpu, MSR_DEV, REG_HWCR, &v);
    CHECK_RC(rc, 0, "HPMread HWCR cpu %u", (unsigned)cpu);
    if (rc == 0)
        CHECK_U64(v, expect, "HPMread HWCR cpu %u after old 0x%016" PRIx64 " new 0x%016" PRIx64,
                  (unsigned)cpu, old, newval);
    CHECK_FILE(cpu, REG_HWCR, expect, "HWCR old 0x%016" PRIx64 " new 0x%016" PRIx64, old, newval);
}

int main(void)
{
    guard_alarm(60);
    if (start_session(SIM_NCPUS) != 0) {
        HPMfinalize();
        return test_result("test_masked");
    }

    /* sentinels around HWCR to catch writes at the wrong place/width */
    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        FILE_PUT(c, REG_HWCR - 1, UINT64_C(0x1111111111111111));
        FILE_PUT(c, REG_HWCR + 1, UINT64_C(0x2222222222222222));
    }

    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        /* the case from the contract: write ~0 over a known value */
        one_case(c, UINT64_C(0x0000000000000011) + c, ~UINT64_C(0));
        /* bit 30 already set, others set: write 0 clears only bit 30 */
        one_case(c, UINT64_C(0xFFFF0000C0000000), 0);
        /* all ones old, write 0 -> only bit 30 cleared */
        one_case(c, ~UINT64_C(0), 0);
        /* zero old, write ~bit30 -> nothing changes */
        one_case(c, 0, ~HWCR_MASK);
        /* zero old, write exactly bit 30 */
        one_case(c, 0, HWCR_MASK);
    }

    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        CHECK_FILE(c, REG_HWCR - 1, UINT64_C(0x1111111111111111), "HWCR-1 sentinel");
        CHECK_FILE(c, REG_HWCR + 1, UINT64_C(0x2222222222222222), "HWCR+1 sentinel");
    }

    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_masked");
}
