/*
 * test_tmp_planting: another user who plants /tmp/likwid-<pid> files cannot stop our daemon from
 * starting. The library used to look for LIKWID's socket path while our daemon was still
 * starting and refused the start when it found a planted file there. Here a wrapper in front of
 * the daemon plants exactly that path (a regular file; owned by uid 65534 when we are root, as
 * an attacker's would be) and starts the daemon only 100 ms later, so the library's polls see
 * the planted file long before the greeting. The start must succeed, and the planted file must
 * be left alone (it is not ours to remove).
 */
#include "check.h"

#define OTHER_UID 65534

int main(void)
{
    guard_alarm(60);
    const char *daemon = getenv("LIKWID_ACCESSD");
    if (!daemon || !*daemon) {
        printf("SKIP: LIKWID_ACCESSD not set\n");
        return TEST_SKIP;
    }
    char dir[] = "/tmp/likwid-planting.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    char wrapper[4200];
    snprintf(wrapper, sizeof wrapper, "%s/likwid-accessD", dir);
    FILE *f = fopen(wrapper, "w");
    CHECK(f != NULL, "create %s: %s", wrapper, strerror(errno));
    if (!f)
        return test_result("test_tmp_planting");
    fprintf(f,
            "#!/bin/sh\n"
            "# plant the path the library would look for, then start late\n"
            ": > /tmp/likwid-$$\n"
            "[ \"$(id -u)\" = 0 ] && chown %d /tmp/likwid-$$\n"
            "sleep 0.1\n"
            "exec '%s' \"$@\"\n",
            OTHER_UID, daemon);
    fclose(f);
    chmod(wrapper, 0755);
    setenv("LIKWID_ACCESSD", wrapper, 1);

    CHECK_RC(HPMinit(), 0, "HPMinit");
    int rc = HPMaddThread(0);
    CHECK_RC(rc, 0, "HPMaddThread(0) with /tmp/likwid-<daemon pid> planted during start");
    pid_t pid = HPMdaemonPid();
    CHECK(pid > 0, "HPMdaemonPid() = %d", (int)pid);
    char planted[64];
    snprintf(planted, sizeof planted, "/tmp/likwid-%d", (int)pid);
    struct stat st;
    CHECK(lstat(planted, &st) == 0 && S_ISREG(st.st_mode), "the planted %s was touched", planted);
    if (rc == 0) {
        uint64_t v = 0;
        CHECK_RC(HPMwrite(0, MSR_DEV, REG_PERF_CTR(0), 0x77), 0, "write after the planted start");
        CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v), 0, "read after the planted start");
        CHECK_U64(v, 0x77, "read after the planted start");
    }
    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    unlink(planted);
    unlink(wrapper);
    rmdir(dir);
    return test_result("test_tmp_planting");
}
