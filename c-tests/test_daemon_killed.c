/*
 * test_daemon_killed: kill -9 the daemon behind the library's back.
 * Later HPMread/HPMwrite must fail promptly (< 2 s each) with -ENOTCONN,
 * the process must not die of SIGPIPE (SIGPIPE is deliberately left at its
 * default action), HPMfinalize returns, and no child (nor zombie) remains.
 * Afterwards a new session can be started.
 */
#include "check.h"

static int wait_dead(pid_t pid, double limit_ms)
{
    double t0 = now_ms();
    while (now_ms() - t0 < limit_ms) {
        char st = 0;
        if (proc_stat(pid, &st, NULL, NULL, 0) != 0 || st == 'Z' || st == 'X')
            return 1;
        sleep_ms(5);
    }
    return 0;
}

int main(void)
{
    guard_alarm(60);
    /* be explicit: SIGPIPE must keep its default (fatal) action */
    signal(SIGPIPE, SIG_DFL);

    if (start_session(SIM_NCPUS) != 0) {
        HPMfinalize();
        return test_result("test_daemon_killed");
    }
    uint64_t v = 0;
    CHECK_RC(HPMwrite(0, MSR_DEV, REG_PERF_CTR(0), 42), 0, "write before kill");
    CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v), 0, "read before kill");
    CHECK_U64(v, 42, "read before kill");

    /* the library must not change the process-wide SIGPIPE disposition
       (that would hide a missing MSG_NOSIGNAL and alter the application) */
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sigaction(SIGPIPE, NULL, &sa);
        CHECK(sa.sa_handler == SIG_DFL, "SIGPIPE disposition was changed by the library (handler %p)",
              (void *)(uintptr_t)sa.sa_handler);
    }

    pid_t d = find_daemon();
    CHECK(d > 0, "no child process with comm 'likwid-accessD' found after HPMaddThread");
    if (d <= 0) {
        report_children("looking for the daemon");
        HPMfinalize();
        return test_result("test_daemon_killed");
    }
    CHECK(kill(d, SIGKILL) == 0, "kill(%d, SIGKILL): %s", (int)d, strerror(errno));
    CHECK(wait_dead(d, 2000.0), "daemon pid %d still alive 2 s after SIGKILL", (int)d);

    struct capture cap;
    int capturing = capture_begin(&cap) == 0;

    for (int i = 0; i < 3; i++) {
        for (uint32_t c = 0; c < SIM_NCPUS; c += 5) {
            double t0 = now_ms();
            int rc = HPMread(c, MSR_DEV, REG_PERF_CTR(0), &v);
            double dt = now_ms() - t0;
            CHECK_RC(rc, -ENOTCONN, "HPMread #%d cpu %u after daemon killed", i, (unsigned)c);
            CHECK(dt < 2000.0, "HPMread #%d after daemon killed took %.0f ms", i, dt);

            t0 = now_ms();
            rc = HPMwrite(c, MSR_DEV, REG_PERF_CTR(0), 7);
            dt = now_ms() - t0;
            CHECK_RC(rc, -ENOTCONN, "HPMwrite #%d cpu %u after daemon killed", i, (unsigned)c);
            CHECK(dt < 2000.0, "HPMwrite #%d after daemon killed took %.0f ms", i, dt);
        }
    }
    CHECK_FILE(0, REG_PERF_CTR(0), 42, "nothing written after the daemon died");

    double t0 = now_ms();
    HPMfinalize();
    double dt = now_ms() - t0;
    CHECK(dt < 5000.0, "HPMfinalize after daemon killed took %.0f ms", dt);

    if (capturing) {
        char buf[8192];
        capture_end(&cap, buf, sizeof buf);
        echo_captured("after kill", buf);
        int n = count_prefixed_lines(buf, LIB_PREFIX);
        CHECK(n <= 1, "expected at most one '" LIB_PREFIX "' line about the dead daemon, saw %d", n);
    }

    CHECK(HPMinitialized() == 0, "HPMinitialized() = %d after HPMfinalize", HPMinitialized());
    CHECK_NO_CHILDREN("after HPMfinalize (killed daemon must be reaped)");

    /* a new session starts a new daemon */
    CHECK_RC(HPMinit(), 0, "HPMinit after the crash");
    CHECK_RC(HPMaddThread(0), 0, "HPMaddThread(0) after the crash");
    v = 0;
    CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v), 0, "read in the new session");
    CHECK_U64(v, 42, "read in the new session");
    HPMfinalize();
    CHECK_NO_CHILDREN("after the second HPMfinalize");

    return test_result("test_daemon_killed");
}
