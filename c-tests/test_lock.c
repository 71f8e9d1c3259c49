/*
 * test_lock: the lock file DIR/var/run/likwid.lock (LIKWID semantics:
 * missing = unlocked; owned by our real uid = unlocked; owned by another
 * uid = locked; root is not exempt).  Needs root for chown (else exit 77).
 *   1. lock owned by uid 65534 before start -> HPMaddThread == -ENOLCK,
 *      one "likwid-access: " line, no child left
 *   2. lock owned by ourselves -> works
 *   3. lock (owned by 65534) created mid-session -> within 1.5 s an
 *      HPMread returns -ENOLCK (writes too, and they change nothing)
 *   4. lock removed -> works again within 1.5 s
 *   5. the daemon's RLIMIT_NOFILE lowered to 0 (its caller can do that to a dropped setuid
 *      daemon with prlimit), then the lock taken -> still -ENOLCK within 1.5 s: the check
 *      needs no descriptor, and a check that fails counts as locked
 */
#include "check.h"
#include <sys/resource.h>

#define OTHER_UID 65534
#define POLL_LIMIT_MS 1500.0

static char lockdir[4096], lockpath[4096];

static void mkdir_p(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

/* Create the lock file atomically (temp file, chown, rename). */
static int make_lock(uid_t uid)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/.likwid.lock.tmp", lockdir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    if (fchown(fd, uid, (gid_t)uid) != 0) {
        fprintf(stderr, "fchown %s: %s\n", tmp, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    if (rename(tmp, lockpath) != 0) {
        fprintf(stderr, "rename %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

/* Poll HPMread until it returns `want`; returns ms taken or -1. */
static double poll_read_until(int want, int *last_rc)
{
    double t0 = now_ms();
    int unexpected = 0;
    for (;;) {
        uint64_t v = 0;
        int rc = HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v);
        *last_rc = rc;
        double dt = now_ms() - t0;
        if (rc == want)
            return dt;
        if (rc != 0 && rc != -ENOLCK && unexpected++ < 5)
            CHECK(0, "HPMread while waiting for %s returned %s", rc_name(want), rc_name(rc));
        if (dt > POLL_LIMIT_MS)
            return -1.0;
        sleep_ms(20);
    }
}

int main(void)
{
    guard_alarm(60);
    /* The library prints its "likwid-access: " line only when asked to. */
    setenv("LIKWID_ACCESS_VERBOSE", "1", 1);
    if (geteuid() != 0) {
        printf("SKIP: needs root\n");
        return TEST_SKIP;
    }
    snprintf(lockdir, sizeof lockdir, "%s/var/run", sim_root());
    snprintf(lockpath, sizeof lockpath, "%s/var/run/likwid.lock", sim_root());
    mkdir_p(lockdir);

    /* 1. locked before start */
    if (make_lock(OTHER_UID) != 0)
        return 1;
    {
        CHECK_RC(HPMinit(), 0, "HPMinit with foreign lock");
        struct capture cap;
        int capturing = capture_begin(&cap) == 0;
        double t0 = now_ms();
        int rc = HPMaddThread(0);
        double dt = now_ms() - t0;
        char buf[8192];
        if (capturing) {
            capture_end(&cap, buf, sizeof buf);
            echo_captured("locked at start", buf);
            CHECK_ONE_LIB_LINE(buf, "lock owned by uid %d at start", OTHER_UID);
        }
        CHECK_RC(rc, -ENOLCK, "HPMaddThread(0) with lock owned by uid %d", OTHER_UID);
        CHECK(dt < 5000.0, "HPMaddThread with foreign lock took %.0f ms", dt);
        CHECK_NO_CHILDREN("after HPMaddThread failed with the lock taken");
        HPMfinalize();
        CHECK_NO_CHILDREN("after HPMfinalize (locked at start)");
    }

    /* 2. lock owned by ourselves */
    CHECK(chown(lockpath, getuid(), getgid()) == 0, "chown lock to ourselves: %s", strerror(errno));
    if (start_session(SIM_NCPUS) != 0) {
        HPMfinalize();
        return test_result("test_lock");
    }
    uint64_t v = 0;
    CHECK_RC(HPMwrite(0, MSR_DEV, REG_PERF_CTR(0), 0x111), 0, "write with own lock");
    CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v), 0, "read with own lock");
    CHECK_U64(v, 0x111, "read with own lock");

    /* no lock at all: still fine */
    CHECK(unlink(lockpath) == 0, "unlink lock: %s", strerror(errno));
    CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v), 0, "read without lock file");

    /* 3. lock taken mid-session */
    if (make_lock(OTHER_UID) != 0) {
        HPMfinalize();
        return 1;
    }
    int last = 0;
    double t = poll_read_until(-ENOLCK, &last);
    CHECK(t >= 0.0, "no HPMread returned -ENOLCK within %.0f ms of taking the lock (last: %s)",
          POLL_LIMIT_MS, rc_name(last));
    if (t >= 0.0) {
        printf("lock seen after %.0f ms\n", t);
        CHECK_RC(HPMwrite(0, MSR_DEV, REG_PERF_CTR(0), 0x222), -ENOLCK, "write while locked");
        CHECK_FILE(0, REG_PERF_CTR(0), 0x111, "write while locked must change nothing");
        CHECK_RC(HPMread(5, MSR_DEV, REG_PERF_CTR(0), &v), -ENOLCK, "read cpu 5 while locked");
    }

    /* 4. lock released */
    CHECK(unlink(lockpath) == 0, "unlink lock: %s", strerror(errno));
    t = poll_read_until(0, &last);
    CHECK(t >= 0.0, "HPMread did not work again within %.0f ms of removing the lock (last: %s)",
          POLL_LIMIT_MS, rc_name(last));
    if (t >= 0.0) {
        printf("unlock seen after %.0f ms\n", t);
        CHECK_RC(HPMwrite(0, MSR_DEV, REG_PERF_CTR(0), 0x333), 0, "write after unlock");
        v = 0;
        CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v), 0, "read after unlock");
        CHECK_U64(v, 0x333, "read after unlock");
        CHECK_FILE(0, REG_PERF_CTR(0), 0x333, "after unlock");
    }

    /* 5. no descriptors left to the daemon */
    pid_t daemon = HPMdaemonPid();
    struct rlimit none = { 0, 0 };
    CHECK(daemon > 0 && prlimit(daemon, RLIMIT_NOFILE, &none, NULL) == 0, "prlimit(%d, RLIMIT_NOFILE, 0): %s",
          (int)daemon, strerror(errno));
    CHECK_RC(HPMwrite(0, MSR_DEV, REG_PERF_CTR(0), 0x444), 0, "write with RLIMIT_NOFILE 0, unlocked");
    if (make_lock(OTHER_UID) == 0) {
        t = poll_read_until(-ENOLCK, &last);
        CHECK(t >= 0.0, "with RLIMIT_NOFILE 0 no HPMread returned -ENOLCK within %.0f ms (last: %s)",
              POLL_LIMIT_MS, rc_name(last));
        CHECK_RC(HPMwrite(0, MSR_DEV, REG_PERF_CTR(0), 0x555), -ENOLCK, "write while locked, RLIMIT_NOFILE 0");
        CHECK_FILE(0, REG_PERF_CTR(0), 0x444, "a locked write with RLIMIT_NOFILE 0 must change nothing");
        unlink(lockpath);
    }

    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_lock");
}
