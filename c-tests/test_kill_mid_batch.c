/*
 * test_kill_mid_batch: a client SIGKILLed while a batch of 65 536 writes is on its way or being
 * executed (kills 0-20 ms after the call starts; with and without pinned workers) leaves every
 * register as it found it: the daemon restores from its journal, exits, and nothing is left.
 * The test is a child subreaper, so the orphaned daemon is reaped here.
 */
#include "check.h"
#include <sys/prctl.h>

#define CPUS 8u
#define OPS 65536u

static uint64_t original(uint32_t cpu, int k, int ctl)
{
    return (ctl ? UINT64_C(0x30000) : UINT64_C(0x1000)) + cpu * 16u + (unsigned)k;
}

static void preset(void)
{
    for (uint32_t c = 0; c < CPUS; c++)
        for (int k = 0; k < NUM_COUNTERS; k++) {
            FILE_PUT(c, REG_PERF_CTL(k), original(c, k, 1));
            FILE_PUT(c, REG_PERF_CTR(k), original(c, k, 0));
        }
}

static int all_original(void)
{
    for (uint32_t c = 0; c < CPUS; c++)
        for (int k = 0; k < NUM_COUNTERS; k++) {
            uint64_t ctl, ctr;
            if (msr_file_read(c, REG_PERF_CTL(k), &ctl) || msr_file_read(c, REG_PERF_CTR(k), &ctr) ||
                ctl != original(c, k, 1) || ctr != original(c, k, 0))
                return 0;
        }
    return 1;
}

static HPMBatchOp ops[OPS];

/* Programs a few registers one by one, reports the daemon pid, then starts the big batch. */
static void client(int out)
{
    start_session(CPUS);
    HPMwrite(0, MSR_DEV, REG_PERF_CTL(0), 0x430076);
    HPMwrite(1, MSR_DEV, REG_PERF_CTR(1), 77);
    for (uint32_t i = 0; i < OPS; i++) {
        uint32_t c = i % CPUS, k = (i / CPUS) % NUM_COUNTERS;
        ops[i] = (HPMBatchOp){ .cpu = c, .dev = MSR_DEV, .reg = i % 2 ? REG_PERF_CTR(k) : REG_PERF_CTL(k),
                               .op = HPM_BATCH_WRITE, .data = 0x420000u + i };
    }
    pid_t daemon = find_daemon();
    if (write(out, &daemon, sizeof daemon) != (ssize_t)sizeof daemon)
        _exit(3);
    HPMbatch(ops, OPS);
    _exit(0); /* the parent kills us first, or we end without EXIT: restore either way */
}

int main(void)
{
    guard_alarm(120);
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER");
    const unsigned delays_ms[] = { 0, 1, 2, 5, 10, 20 };
    for (unsigned run = 0; run < 2 * sizeof delays_ms / sizeof delays_ms[0]; run++) {
        unsigned delay = delays_ms[run / 2];
        if (run % 2)
            setenv("LIKWID_ACCESS_WORKERS", "1", 1);
        else
            unsetenv("LIKWID_ACCESS_WORKERS");
        preset();
        int fds[2];
        if (pipe(fds) != 0)
            return 2;
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            client(fds[1]);
        }
        close(fds[1]);
        pid_t daemon = -1;
        if (read(fds[0], &daemon, sizeof daemon) != (ssize_t)sizeof daemon)
            daemon = -1;
        close(fds[0]);
        sleep_ms(delay);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        double t0 = now_ms(), exited_at = -1;
        while (now_ms() - t0 < 5000.0 * slow_factor() && exited_at < 0) {
            if (daemon > 0 && waitpid(daemon, NULL, WNOHANG) == daemon)
                exited_at = now_ms() - t0;
            sleep_ms(1);
        }
        printf("killed %u ms into the batch (%s): daemon exited after %.1f ms, registers %s\n", delay,
               run % 2 ? "pinned workers" : "inline", exited_at, all_original() ? "restored" : "NOT restored");
        CHECK(daemon > 0 && exited_at >= 0, "daemon %d did not exit within 5 s of the kill", (int)daemon);
        CHECK(all_original(), "registers not restored after a kill %u ms into the batch", delay);
    }
    CHECK_NO_CHILDREN("after every kill");
    return test_result("test_kill_mid_batch");
}
