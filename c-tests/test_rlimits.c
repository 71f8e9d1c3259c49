/*
 * test_rlimits: the user may lower the limits of their own daemon (prlimit; after the privilege
 * drop its uids are the user's). RLIMIT_NOFILE 0 must change nothing: the lock file still
 * locks (the check needs no descriptor) and serving goes on. RLIMIT_AS at the daemon's current
 * size: a batch whose buffer no longer fits is refused as a whole (-EIO, nothing of it applied,
 * the refusal logged: c-tests/faults.sh checks the log) and the session goes on.
 * The lock is taken as root by chown to another uid, else by an unreadable lock file of ours.
 */
#include "check.h"
#include <sys/prctl.h>
#include <sys/resource.h>

#define OPS 65536u
static HPMBatchOp ops[OPS];

static const char *lock_path(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/var/run/likwid.lock", sim_root());
    return path;
}

static void take_lock(int take)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/var/run", sim_root());
    mkdir(dir, 0755);
    if (!take) {
        unlink(lock_path());
        return;
    }
    int fd = open(lock_path(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ok = fd >= 0 && (geteuid() == 0 ? fchown(fd, 65534, 65534) == 0 : fchmod(fd, 0) == 0);
    CHECK(ok, "take the lock: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
}

static long vm_size_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

int main(void)
{
    guard_alarm(60);
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER");
    if (start_session(SIM_NCPUS) != 0) {
        HPMfinalize();
        return test_result("test_rlimits");
    }
    pid_t daemon = HPMdaemonPid();
    struct rlimit none = { 0, 0 };
    CHECK(prlimit(daemon, RLIMIT_NOFILE, &none, NULL) == 0, "prlimit NOFILE: %s", strerror(errno));
    CHECK_RC(HPMwrite(2, MSR_DEV, REG_PERF_CTR(0), 5), 0, "write with RLIMIT_NOFILE 0");

    take_lock(1);
    sleep_ms(300); /* the daemon re-reads the lock at least every 250 ms */
    CHECK_RC(HPMwrite(2, MSR_DEV, REG_PERF_CTR(0), 6), -ENOLCK, "write under another user's lock, RLIMIT_NOFILE 0");
    CHECK_FILE(2, REG_PERF_CTR(0), 5, "the locked write did not land");
    take_lock(0);
    sleep_ms(300);
    CHECK_RC(HPMwrite(2, MSR_DEV, REG_PERF_CTR(0), 7), 0, "write after the lock is gone");

    /* RLIMIT_AS: nothing more may be mapped. The batch needs 2 MiB in and 2 MiB out. */
    FILE_PUT(3, REG_PERF_CTL(1), 0x1111);
    long kib = vm_size_kib(daemon);
    struct rlimit as = { (rlim_t)kib * 1024, (rlim_t)kib * 1024 };
    CHECK(kib > 0 && prlimit(daemon, RLIMIT_AS, &as, NULL) == 0, "prlimit AS %ld KiB: %s", kib, strerror(errno));
    for (uint32_t i = 0; i < OPS; i++)
        ops[i] = (HPMBatchOp){ .cpu = 3, .dev = MSR_DEV, .reg = REG_PERF_CTL(1), .op = HPM_BATCH_WRITE, .data = i };
    double t0 = now_ms();
    int rc = HPMbatch(ops, OPS);
    printf("batch of %u under RLIMIT_AS %ld KiB: %s after %.0f ms\n", OPS, kib, rc_name(rc), now_ms() - t0);
    CHECK_RC(rc, -EIO, "a batch the daemon has no memory for is refused as a whole");
    uint64_t v = 0;
    CHECK_RC(HPMread(3, MSR_DEV, REG_PERF_CTL(1), &v), 0, "the session goes on after the refusal");
    CHECK_U64(v, 0x1111, "nothing of the refused batch applied");
    CHECK_RC(HPMwrite(3, MSR_DEV, REG_PERF_CTL(1), 0x2222), 0, "a write after the refusal");
    HPMfinalize();
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    sleep_ms(100);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    CHECK_FILE(3, REG_PERF_CTL(1), 0x2222, "EXIT keeps the last write");
    CHECK_FILE(2, REG_PERF_CTR(0), 7, "EXIT keeps the write made with RLIMIT_NOFILE 0");
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_rlimits");
}
