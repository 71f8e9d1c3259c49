/*
 * test_umc: the Zen 4 memory-controller (UMC) counters LIKWID 5.5 programs are reachable
 * through the library, with LIKWID's write masks, and nothing past them.
 *
 * LIKWID 5.5.1 (src/includes/perfmon_zen4.h, registers.h MSR_AMD19_UMC_PERFEVTSEL0/PMC0)
 * sizes the UMC counters from CPUID 0x80000022 in the client and programs
 * PerfMonCtl 0xC0010800 + 2k (EventSelect[7:0], RdWrMask[9:8], Enable[31]) and
 * PerfMonCtr 0xC0010801 + 2k (48 bits), up to 64 pairs. Note that it addresses pair k as
 * 0xC0010800 + k / 0xC0010801 + k, so a configuration value can land on an odd address and a
 * counter reset on an even one: both fit the masks here.
 * On the simulated zen4 (run.sh): for a few pairs on the first and last CPU, a configuration
 * is stored, an over-wide one keeps only its fields, counters are read and reset, and the
 * first register after the last pair (0xC0010880) is refused, its file untouched.
 */
#include "check.h"

#define UMC_CTL(k) (0xC0010800u + 2u * (uint32_t)(k))
#define UMC_CTR(k) (0xC0010801u + 2u * (uint32_t)(k))
#define UMC_CTL_MASK UINT64_C(0x800003FF)
#define UMC_PAIRS 64u
#define UMC_PAST (0xC0010800u + 2u * UMC_PAIRS)

static void one_pair(uint32_t cpu, uint32_t k)
{
    unsigned cc = (unsigned)cpu, kk = (unsigned)k;
    /* LIKWID's setup value: enable, RdWrMask 3, event 0xAB. */
    uint64_t config = (UINT64_C(1) << 31) | (UINT64_C(3) << 8) | 0xAB;
    uint64_t v = 0;

    FILE_PUT(cpu, UMC_CTL(k), 0);
    CHECK_RC(HPMwrite(cpu, MSR_DEV, UMC_CTL(k), config), 0, "UMC PerfMonCtl%u cpu %u", kk, cc);
    CHECK_RC(HPMread(cpu, MSR_DEV, UMC_CTL(k), &v), 0, "read UMC PerfMonCtl%u cpu %u", kk, cc);
    CHECK_U64(v, config, "UMC PerfMonCtl%u cpu %u", kk, cc);
    CHECK_FILE(cpu, UMC_CTL(k), config, "UMC PerfMonCtl%u", kk);

    /* Bits outside EventSelect, RdWrMask and Enable stay as they were (here 0). */
    CHECK_RC(HPMwrite(cpu, MSR_DEV, UMC_CTL(k), ~UINT64_C(0)), 0, "UMC PerfMonCtl%u all ones cpu %u", kk, cc);
    CHECK_FILE(cpu, UMC_CTL(k), UMC_CTL_MASK, "UMC PerfMonCtl%u after all ones", kk);

    /* The counter: read what the hardware counted, reset it, 48 bits writable. */
    FILE_PUT(cpu, UMC_CTR(k), UINT64_C(0x123456789A) + k);
    CHECK_RC(HPMread(cpu, MSR_DEV, UMC_CTR(k), &v), 0, "read UMC PerfMonCtr%u cpu %u", kk, cc);
    CHECK_U64(v, UINT64_C(0x123456789A) + k, "UMC PerfMonCtr%u cpu %u", kk, cc);
    CHECK_RC(HPMwrite(cpu, MSR_DEV, UMC_CTR(k), 0), 0, "reset UMC PerfMonCtr%u cpu %u", kk, cc);
    CHECK_FILE(cpu, UMC_CTR(k), 0, "UMC PerfMonCtr%u after reset", kk);
    CHECK_RC(HPMwrite(cpu, MSR_DEV, UMC_CTR(k), ~UINT64_C(0)), 0, "UMC PerfMonCtr%u all ones cpu %u", kk, cc);
    CHECK_FILE(cpu, UMC_CTR(k), CTR_MASK, "UMC PerfMonCtr%u after all ones", kk);

    /* LIKWID 5.5's pair addressing: configuration k=1 goes to 0xC0010801 (PerfMonCtr0). */
    if (k == 0) {
        CHECK_RC(HPMwrite(cpu, MSR_DEV, UMC_CTL(0) + 1, config), 0, "config at 0xC0010801 cpu %u", cc);
        CHECK_FILE(cpu, UMC_CTL(0) + 1, config, "config at 0xC0010801");
    }
}

int main(void)
{
    guard_alarm(60);
    if (start_session(SIM_NCPUS) != 0) {
        HPMfinalize();
        return test_result("test_umc");
    }
    uint32_t cpus[] = {0, SIM_NCPUS - 1};
    uint32_t pairs[] = {0, 1, 11, 47, UMC_PAIRS - 1};
    for (size_t c = 0; c < sizeof cpus / sizeof cpus[0]; c++) {
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++)
            one_pair(cpus[c], pairs[p]);

        uint64_t v = 0x77;
        FILE_PUT(cpus[c], UMC_PAST, UINT64_C(0x5A5A));
        CHECK_RC(HPMwrite(cpus[c], MSR_DEV, UMC_PAST, 0), -EPERM, "write past the UMC pairs cpu %u", (unsigned)cpus[c]);
        CHECK_RC(HPMread(cpus[c], MSR_DEV, UMC_PAST, &v), -EPERM, "read past the UMC pairs cpu %u", (unsigned)cpus[c]);
        CHECK_FILE(cpus[c], UMC_PAST, UINT64_C(0x5A5A), "register past the UMC pairs");
    }
    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_umc");
}
