/*
 * test_sparse_ids: run.sh gives this test a machine made with
 * `--cpu-list 0,3,7`.  Cpus 0, 3 and 7 work; 1 (a gap) and 8 give -ERANGE.
 */
#include "check.h"

int main(void)
{
    guard_alarm(60);
    static const uint32_t present[] = { 0u, 3u, 7u };
    static const uint32_t absent[] = { 1u, 2u, 4u, 5u, 6u, 8u, 0xFFFFFFFFu };
    const size_t np = sizeof present / sizeof present[0];
    const size_t na = sizeof absent / sizeof absent[0];

    CHECK_RC(HPMinit(), 0, "HPMinit");
    for (size_t i = 0; i < np; i++)
        CHECK_RC(HPMaddThread(present[i]), 0, "HPMaddThread(%u)", (unsigned)present[i]);
    for (size_t i = 0; i < na; i++)
        CHECK_RC(HPMaddThread(absent[i]), -ERANGE, "HPMaddThread(%u) (not on the machine)",
                 (unsigned)absent[i]);

    for (size_t i = 0; i < np; i++) {
        uint32_t c = present[i];
        uint64_t w = UINT64_C(0x0000AB0000000000) | ((uint64_t)c << 8) | 0x5u;
        uint64_t v = 0;
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(3), w), 0, "HPMwrite cpu %u", (unsigned)c);
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(3), &v), 0, "HPMread cpu %u", (unsigned)c);
        CHECK_U64(v, w, "readback cpu %u", (unsigned)c);
        CHECK_FILE(c, REG_PERF_CTR(3), w, "file cpu %u", (unsigned)c);
        CHECK(HPMcheck(MSR_DEV, c) == 1, "HPMcheck(MSR_DEV, %u) = %d, expected 1", (unsigned)c,
              HPMcheck(MSR_DEV, c));
    }
    for (size_t i = 0; i < na; i++) {
        uint32_t c = absent[i];
        uint64_t v = 0;
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(3), &v), -ERANGE, "HPMread cpu %u (gap/absent)",
                 (unsigned)c);
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(3), 1), -ERANGE, "HPMwrite cpu %u (gap/absent)",
                 (unsigned)c);
        CHECK(HPMcheck(MSR_DEV, c) == 0, "HPMcheck(MSR_DEV, %u) = %d, expected 0", (unsigned)c,
              HPMcheck(MSR_DEV, c));
    }

    /* the daemon still serves after all that */
    uint64_t v = 0;
    CHECK_RC(HPMread(7, MSR_DEV, REG_PERF_CTR(3), &v), 0, "final read cpu 7");

    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_sparse_ids");
}
