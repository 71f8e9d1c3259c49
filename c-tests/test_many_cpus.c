/*
 * test_many_cpus: on a simulated 256-CPU machine, HPMinit + HPMaddThread for every CPU takes
 * milliseconds, starts exactly one daemon and costs this process a bounded number of fds
 * (LIKWID 5 starts one daemon, with its own socket, per hardware thread).
 */
#include "check.h"

#define NCPUS 256u

int main(void)
{
    guard_alarm(60);
    int fds_before = count_fds();
    double t0 = now_ms();
    CHECK_RC(HPMinit(), 0, "HPMinit");
    for (uint32_t c = 0; c < NCPUS; c++)
        CHECK_RC(HPMaddThread(c), 0, "HPMaddThread(%u)", (unsigned)c);
    double took = now_ms() - t0;
    printf("HPMinit + HPMaddThread for %u CPUs: %.2f ms\n", NCPUS, took);
    CHECK(took < 250.0 * slow_factor(), "start-up for %u CPUs took %.1f ms", NCPUS, took);
    CHECK_RC(HPMaddThread(NCPUS), -ERANGE, "cpu %u is not on the machine", NCPUS);

    struct child_info ci[64];
    int daemons = 0, n = list_children(ci, 64);
    for (int i = 0; i < n && i < 64; i++)
        daemons += strcmp(ci[i].comm, "likwid-accessD") == 0;
    CHECK(daemons == 1, "%d daemons for %u CPUs, want 1", daemons, NCPUS);
    int fds_after = count_fds();
    CHECK(fds_after - fds_before <= 2, "the library holds %d more fds for %u CPUs", fds_after - fds_before, NCPUS);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", HPMdaemonPid());
    int dfds = count_dir_entries(path);
    printf("library fds +%d, daemon fds %d\n", fds_after - fds_before, dfds);
    CHECK(dfds > 0 && dfds <= (int)NCPUS + 8, "the daemon holds %d fds for %u CPUs", dfds, NCPUS);

    uint64_t v = 0;
    CHECK_RC(HPMwrite(NCPUS - 1, MSR_DEV, REG_PERF_CTR(0), 77), 0, "write on the last cpu");
    CHECK_RC(HPMread(NCPUS - 1, MSR_DEV, REG_PERF_CTR(0), &v), 0, "read on the last cpu");
    CHECK_U64(v, 77, "PERF_CTR0 on cpu %u", NCPUS - 1);
    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_many_cpus");
}
