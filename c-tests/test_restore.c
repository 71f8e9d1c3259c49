/*
 * test_restore: a client that dies without EXIT (SIGKILL) after programming counters leaves the
 * machine as it found it: the daemon writes every original value back, within 100 ms, and
 * exits. A client that ends with HPMfinalize (EXIT) keeps what it programmed, as LIKWID's
 * tools expect. A client that dies while another user holds the lock file gets nothing restored:
 * that write would land in the other user's locked measurement (needs root to chown the lock).
 * The test is a child subreaper, so the orphaned daemon is reaped here.
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

#define OTHER_UID 65534
enum ending { FINALIZE, CRASH, CRASH_ON_GO };

/* The child: program, then die (CRASH at once, CRASH_ON_GO when a byte arrives on `go`) or
 * finalize. Reports the daemon pid on `out`. */
static void client(int out, int go, enum ending crash)
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
    if (crash == CRASH_ON_GO) {
        char byte;
        if (read(go, &byte, 1) != 1)
            _exit(4);
    }
    if (crash != FINALIZE)
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

/* Runs a client to its end; with CRASH_ON_GO, `between` runs after it programmed and before
 * it dies. */
static const char *lock_path(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/var/run/likwid.lock", sim_root());
    return path;
}

/* Another user takes the lock file while our client is still programmed. */
static void take_foreign_lock(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/var", sim_root());
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/var/run", sim_root());
    mkdir(dir, 0755);
    int fd = open(lock_path(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && fchown(fd, OTHER_UID, OTHER_UID) == 0, "create the lock owned by uid %d: %s", OTHER_UID,
          strerror(errno));
    if (fd >= 0)
        close(fd);
}

static pid_t run_client(enum ending crash, void (*between)(void))
{
    int fds[2], go[2];
    if (pipe(fds) != 0 || pipe(go) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        close(go[1]);
        client(fds[1], go[0], crash);
    }
    close(fds[1]);
    close(go[0]);
    pid_t daemon = -1;
    if (read(fds[0], &daemon, sizeof daemon) != (ssize_t)sizeof daemon)
        daemon = -1;
    close(fds[0]);
    if (between)
        between();
    /* (Only a waiting client reads: a write to a dead one's pipe would raise SIGPIPE.) */
    if (crash == CRASH_ON_GO && write(go[1], "g", 1) != 1)
        CHECK(0, "cannot signal the client: %s", strerror(errno));
    close(go[1]);
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
    pid_t daemon = run_client(CRASH, NULL);
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
    daemon = run_client(FINALIZE, NULL);
    if (daemon > 0)
        waitpid(daemon, NULL, 0); /* finalize already reaped it: ECHILD is fine */
    CHECK(registers_are(0x430076, 2000, ORIG_HWCR | HWCR_MASK, 1), "a clean EXIT keeps the programmed values");

    if (geteuid() == 0) {
        preset();
        daemon = run_client(CRASH_ON_GO, take_foreign_lock);
        if (daemon > 0)
            waitpid(daemon, NULL, 0);
        CHECK(registers_are(0x430076, 2000, ORIG_HWCR | HWCR_MASK, 1),
              "a crash under another user's lock must restore nothing (that would write into their measurement)");
        unlink(lock_path());
    } else {
        printf("not root: the restore-under-a-foreign-lock case needs chown and is not run\n");
    }
    CHECK_NO_CHILDREN("after both clients");
    return test_result("test_restore");
}
