/*
 * test_fork: a forked child must not use the parent's daemon connection.
 *   parent: HPMinit, HPMaddThread(all), write a value on cpu 0, fork()
 *   child:  reads that value back with plain HPMread (no re-init), then
 *           hammers cpu 3 while the parent hammers cpu 2 at the same time
 *           (a shared socket mixes up replies), writes a marker on cpu 1,
 *           HPMfinalize (must not stop the parent's daemon), _exit
 *   parent: waits, sees the child's marker, its own connection still works
 *           (reads and writes, same daemon pid), HPMfinalize, no children.
 */
#include "check.h"

#define PARENT_VALUE UINT64_C(0x0000FACE0000CAFE)
#define CHILD_MARKER UINT64_C(0x0000C0FFEE000001)
#define LOOPS 2000

/* write/read loop on one cpu; returns the number of problems */
static long hammer(uint32_t cpu, uint64_t seed, const char *who)
{
    long bad = 0;
    for (long i = 0; i < LOOPS; i++) {
        int k = (int)(i % NUM_COUNTERS);
        uint64_t val = xorshift64(&seed) & CTR_MASK;
        uint64_t v = ~UINT64_C(0);
        int rc = HPMwrite(cpu, MSR_DEV, REG_PERF_CTR(k), val);
        if (rc != 0) {
            if (bad++ < 10)
                fprintf(stderr, "%s: op %ld HPMwrite cpu %u returned %s\n", who, i, (unsigned)cpu, rc_name(rc));
            continue;
        }
        rc = HPMread(cpu, MSR_DEV, REG_PERF_CTR(k), &v);
        if (rc != 0 || v != val) {
            if (bad++ < 10)
                fprintf(stderr, "%s: op %ld cpu %u PERF_CTR%d wrote 0x%012" PRIx64 " read 0x%016" PRIx64
                        " rc %s\n", who, i, (unsigned)cpu, k, val, v, rc_name(rc));
        }
    }
    return bad;
}

static int child_main(int go_fd)
{
    guard_alarm(30);
    char c;
    /* wait until the parent is ready so both hammer at the same time */
    if (read(go_fd, &c, 1) != 1)
        fprintf(stderr, "child: sync read failed\n");
    close(go_fd);

    uint64_t v = 0;
    int rc = HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v);
    CHECK_RC(rc, 0, "child: HPMread cpu 0 (inherited session)");
    CHECK_U64(v, PARENT_VALUE, "child: value written by parent");

    long bad = hammer(3, 0x1234567ULL, "child");
    CHECK(bad == 0, "child: %ld failed/mismatched operations on cpu 3", bad);

    CHECK_RC(HPMwrite(1, MSR_DEV, REG_PERF_CTR(1), CHILD_MARKER), 0, "child: marker write");
    v = 0;
    CHECK_RC(HPMread(1, MSR_DEV, REG_PERF_CTR(1), &v), 0, "child: marker read");
    CHECK_U64(v, CHILD_MARKER, "child: marker read back");

    HPMfinalize();
    CHECK(HPMinitialized() == 0, "child: HPMinitialized() = %d after HPMfinalize", HPMinitialized());
    CHECK_NO_CHILDREN("child: after HPMfinalize");
    fflush(stdout);
    fflush(stderr);
    return check_failures() ? 1 : 0;
}

int main(void)
{
    guard_alarm(60);
    if (start_session(SIM_NCPUS) != 0) {
        HPMfinalize();
        return test_result("test_fork");
    }
    CHECK_RC(HPMwrite(0, MSR_DEV, REG_PERF_CTR(0), PARENT_VALUE), 0, "parent: initial write");
    pid_t daemon_before = find_daemon();
    CHECK(daemon_before > 0, "parent: no likwid-accessD child found after HPMaddThread");

    int go[2];
    if (pipe(go) != 0) {
        perror("pipe");
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        close(go[1]);
        _exit(child_main(go[0]));
    }
    close(go[0]);
    if (write(go[1], "g", 1) != 1)
        fprintf(stderr, "parent: sync write failed\n");
    close(go[1]);

    long bad = hammer(2, 0x7654321ULL, "parent");
    CHECK(bad == 0, "parent: %ld failed/mismatched operations on cpu 2 while the child ran", bad);

    int status = 0;
    double t0 = now_ms();
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    CHECK(w == pid, "waitpid(child) returned %d (%s)", (int)w, strerror(errno));
    if (w == pid) {
        if (WIFSIGNALED(status))
            CHECK(0, "child killed by signal %d (%s) after %.0f ms", WTERMSIG(status),
                  strsignal(WTERMSIG(status)), now_ms() - t0);
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child exit status %d",
                  WEXITSTATUS(status));
    }

    /* the parent's connection still works */
    CHECK(HPMinitialized() == 1, "parent: HPMinitialized() = %d after the child finalized", HPMinitialized());
    uint64_t v = 0;
    CHECK_RC(HPMread(1, MSR_DEV, REG_PERF_CTR(1), &v), 0, "parent: read child's marker");
    CHECK_U64(v, CHILD_MARKER, "parent: child's marker");
    v = 0;
    CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v), 0, "parent: read own value");
    CHECK_U64(v, PARENT_VALUE, "parent: own value after child exit");
    for (uint32_t c = 0; c < SIM_NCPUS; c++) {
        uint64_t val = UINT64_C(0x0000700000000000) | c;
        CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(2), val), 0, "parent: write cpu %u after child", (unsigned)c);
        v = 0;
        CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(2), &v), 0, "parent: read cpu %u after child", (unsigned)c);
        CHECK_U64(v, val, "parent: readback cpu %u after child", (unsigned)c);
        CHECK_FILE(c, REG_PERF_CTR(2), val, "parent after child");
    }
    if (daemon_before > 0) {
        char st = 0;
        pid_t pp = 0;
        int alive = proc_stat(daemon_before, &st, &pp, NULL, 0) == 0 && pp == getpid() && st != 'Z';
        CHECK(alive, "parent: its daemon (pid %d) is gone after the child finished (state %c)",
              (int)daemon_before, st ? st : '-');
    }

    HPMfinalize();
    CHECK_NO_CHILDREN("parent: after HPMfinalize");
    return test_result("test_fork");
}
