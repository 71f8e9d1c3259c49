/*
 * test_denied: the zen4 policy denies
 *   SYSCFG 0xC0010010 write, TSC 0x10 write   -> -EPERM (file unchanged)
 *   EFER 0xC0000080 read, 0x1234 read/write   -> -EPERM
 * while TSC stays readable.  Register files must be unchanged.
 */
#include "check.h"

#define OLD_SYSCFG UINT64_C(0x0000000000740000)
#define OLD_TSC UINT64_C(0x00000123456789AB)
#define OLD_EFER UINT64_C(0x0000000000000D01)
#define OLD_BOGUS UINT64_C(0x5A5A5A5A5A5A5A5A)

int main(void)
{
    guard_alarm(60);
    if (start_session(SIM_NCPUS) != 0) {
        HPMfinalize();
        return test_result("test_denied");
    }

    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        FILE_PUT(c, REG_SYSCFG, OLD_SYSCFG);
        FILE_PUT(c, REG_TSC, OLD_TSC + c);
        FILE_PUT(c, REG_EFER, OLD_EFER);
        FILE_PUT(c, REG_BOGUS, OLD_BOGUS);
    }

    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        uint64_t v;
        unsigned cc = (unsigned)c;

        CHECK_RC(HPMwrite(c, MSR_DEV, REG_SYSCFG, ~UINT64_C(0)), -EPERM, "SYSCFG write cpu %u", cc);
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_SYSCFG, 0), -EPERM, "SYSCFG write 0 cpu %u", cc);
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_TSC, 0), -EPERM, "TSC write cpu %u", cc);
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_TSC, UINT64_C(0x42)), -EPERM, "TSC write cpu %u", cc);

        v = 0x77;
        CHECK_RC(HPMread(c, MSR_DEV, REG_EFER, &v), -EPERM, "EFER read cpu %u", cc);
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_EFER, 0), -EPERM, "EFER write cpu %u", cc);
        v = 0x77;
        CHECK_RC(HPMread(c, MSR_DEV, REG_BOGUS, &v), -EPERM, "0x1234 read cpu %u", cc);
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_BOGUS, 0), -EPERM, "0x1234 write cpu %u", cc);

        /* TSC remains readable and shows the register file's content */
        v = 0;
        int rc = HPMread(c, MSR_DEV, REG_TSC, &v);
        CHECK_RC(rc, 0, "TSC read cpu %u", cc);
        if (rc == 0)
            CHECK_U64(v, OLD_TSC + c, "TSC read cpu %u", cc);

        /* a denied request does not break the connection */
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(0), UINT64_C(0x1234) + c), 0,
                 "PERF_CTR0 write after denials cpu %u", cc);
        v = 0;
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(0), &v), 0, "PERF_CTR0 read cpu %u", cc);
        CHECK_U64(v, UINT64_C(0x1234) + c, "PERF_CTR0 after denials cpu %u", cc);
    }

    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        CHECK_FILE(c, REG_SYSCFG, OLD_SYSCFG, "SYSCFG after denied writes");
        CHECK_FILE(c, REG_TSC, OLD_TSC + c, "TSC after denied writes");
        CHECK_FILE(c, REG_EFER, OLD_EFER, "EFER after denied write");
        CHECK_FILE(c, REG_BOGUS, OLD_BOGUS, "0x1234 after denied write");
    }

    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_denied");
}
