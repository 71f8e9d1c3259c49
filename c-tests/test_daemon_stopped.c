/*
 * test_daemon_stopped: a daemon that stops answering (SIGSTOP) must not hang the application.
 * HPMread returns an error within the library's reply bound (10 s), later calls fail at once,
 * HPMfinalize returns within its grace period (2 s) and leaves no child or zombie, and a new
 * session works afterwards.
 */
#include "check.h"

int main(void)
{
    guard_alarm(60);
    if (start_session(SIM_NCPUS) != 0) {
        HPMfinalize();
        return test_result("test_daemon_stopped");
    }
    uint64_t v = 0;
    CHECK_RC(HPMwrite(1, MSR_DEV, REG_PERF_CTR(0), 42), 0, "write before the stop");
    pid_t daemon = HPMdaemonPid();
    CHECK(daemon > 0 && kill(daemon, SIGSTOP) == 0, "SIGSTOP daemon %d", (int)daemon);

    double t0 = now_ms();
    int rc = HPMread(1, MSR_DEV, REG_PERF_CTR(0), &v);
    double took = now_ms() - t0;
    printf("HPMread on a stopped daemon: %s after %.0f ms\n", rc_name(rc), took);
    CHECK(rc < 0, "HPMread on a stopped daemon returned %s", rc_name(rc));
    CHECK(took >= 9000 && took <= 12000.0 * slow_factor(), "HPMread returned after %.0f ms, bound 10 s", took);

    t0 = now_ms();
    rc = HPMwrite(1, MSR_DEV, REG_PERF_CTR(0), 43);
    took = now_ms() - t0;
    CHECK(rc < 0 && took < 100.0 * slow_factor(), "next call: %s after %.0f ms (want an error at once)", rc_name(rc),
          took);

    t0 = now_ms();
    HPMfinalize();
    took = now_ms() - t0;
    printf("HPMfinalize with the daemon stopped: %.0f ms\n", took);
    CHECK(took <= 3000.0 * slow_factor(), "HPMfinalize took %.0f ms", took);
    CHECK_NO_CHILDREN("after HPMfinalize");

    if (start_session(SIM_NCPUS) == 0) {
        CHECK_RC(HPMread(1, MSR_DEV, REG_PERF_CTR(0), &v), 0, "read in a new session");
        CHECK_U64(v, 42, "the write before the stop");
    }
    HPMfinalize();
    CHECK_NO_CHILDREN("after the second session");
    return test_result("test_daemon_stopped");
}
