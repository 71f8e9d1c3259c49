/*
 * test_restore: a client that dies without EXIT (SIGKILL) after programming counters leaves the
 * machine as it found it: the daemon writes every original value back, within 100 ms, and
 * exits. A client that ends with HPMfinalize (EXIT) keeps what it programmed, as LIKWID's
 * tools expect. The test is a child subreaper, so the orphaned daemon is reaped here.
 */
#include "check.h"
#include <sys/prctl.h>

#define CPUS 4u
static const uint64_t ORIG_CTL = UINT64_C(0x0000000000030076);
static const uint64_t ORIG_CTR = UINT64_C(0x0000000000001234);
static const uint64_t ORIG_HWCR = UINT64_C(0x0000000000000010);

static void preset(void)
{
    for (uint32_t c = 0; c < CPUS; c++) {
        FILE_PUT(c, REG_PERF_CTL(0), ORIG_CTL);
        FILE_PUT(c, REG_PERF_CTR(0), ORIG_CTR);
        FILE_PUT(c, REG_HWCR, ORIG_HWCR);
    }
}

/* The child: program, then die (crash = 1) or finalize. Reports the daemon pid on `out`. */
static void client(int out, int crash)
{
    start_session(CPUS);
    for (uint32_t c = 0; c < CPUS; c++) {
        HPMwrite(c, MSR_DEV, REG_PERF_CTL(0), 0x430076);
        HPMwrite(c, MSR_DEV, REG_PERF_CTR(0), 1000 + c);
        HPMwrite(c, MSR_DEV, REG_PERF_CTR(0), 2000 + c); /* second write: first original kept */
        HPMwrite(c, MSR_DEV, REG_HWCR, ~UINT64_C(0));
    }
    pid_t daemon = find_daemon();
    if (write(out, &daemon, sizeof daemon) != (ssize_t)sizeof daemon)
        _exit(3);
    if (crash)
        raise(SIGKILL);
    HPMfinalize();
    _exit(check_failures() ? 1 : 0);
}

static int registers_are(uint64_t ctl, uint64_t ctr_base, uint64_t hwcr, int ctr_per_cpu)
{
    for (uint32_t c = 0; c < CPUS; c++) {
        uint64_t v[3];
        if (msr_file_read(c, REG_PERF_CTL(0), &v[0]) || msr_file_read(c, REG_PERF_CTR(0), &v[1]) ||
            msr_file_read(c, REG_HWCR, &v[2]))
            return 0;
        if (v[0] != ctl || v[1] != ctr_base + (ctr_per_cpu ? c : 0) || v[2] != hwcr)
            return 0;
    }
    return 1;
}

static pid_t run_client(int crash)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        client(fds[1], crash);
    }
    close(fds[1]);
    pid_t daemon = -1;
    if (read(fds[0], &daemon, sizeof daemon) != (ssize_t)sizeof daemon)
        daemon = -1;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (crash)
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "client status %d", status);
    else
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client status %d", status);
    return daemon;
}

int main(void)
{
    guard_alarm(60);
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER");

    preset();
    pid_t daemon = run_client(1);
    CHECK(daemon > 0, "no daemon pid from the client");
    double t0 = now_ms(), restored_at = -1, exited_at = -1;
    while (now_ms() - t0 < 2000.0 * slow_factor() && (restored_at < 0 || exited_at < 0)) {
        if (restored_at < 0 && registers_are(ORIG_CTL, ORIG_CTR, ORIG_HWCR, 0))
            restored_at = now_ms() - t0;
        if (exited_at < 0 && daemon > 0 && waitpid(daemon, NULL, WNOHANG) == daemon)
            exited_at = now_ms() - t0;
        sleep_ms(1);
    }
    printf("after SIGKILL: registers restored after %.1f ms, daemon exited after %.1f ms\n", restored_at,
           exited_at);
    CHECK(restored_at >= 0 && restored_at <= 100.0 * slow_factor(), "registers restored after %.1f ms", restored_at);
    CHECK(exited_at >= 0 && exited_at <= 100.0 * slow_factor(), "daemon exited after %.1f ms", exited_at);
    for (uint32_t c = 0; c < CPUS; c++) {
        CHECK_FILE(c, REG_PERF_CTL(0), ORIG_CTL, "restored PERF_CTL0");
        CHECK_FILE(c, REG_PERF_CTR(0), ORIG_CTR, "restored PERF_CTR0 (first original, not the second write's)");
        CHECK_FILE(c, REG_HWCR, ORIG_HWCR, "restored HWCR");
    }

    preset();
    daemon = run_client(0);
    if (daemon > 0)
        waitpid(daemon, NULL, 0); /* finalize already reaped it: ECHILD is fine */
    CHECK(registers_are(0x430076, 2000, ORIG_HWCR | HWCR_MASK, 1), "a clean EXIT keeps the programmed values");
    CHECK_NO_CHILDREN("after both clients");
    return test_result("test_restore");
}
