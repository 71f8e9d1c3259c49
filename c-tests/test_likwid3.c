/*
 * test_likwid3: the LIKWID 3 functions, used the LIKWID 3 way, on the simulated zen4 machine.
 *
 *  1. main: accessClient_init + msr_init, then msr_write/msr_read through that global session
 *     (errno 0 after success; a denied write sets EPERM and leaves the register alone).
 *  2. NTHREADS threads, each with its own accessClient_init socket (all open at the same
 *     time: one daemon each), writing and reading its own CPU's counters with msr_twrite /
 *     msr_tread and accessClient_write / accessClient_read, then accessClient_finalize.
 *  3. error cases: bogus and finalized descriptors (EBADF, no crash), NULL, LIKWID 3's PCI
 *     device numbers and the pci_* functions (EFAULT, ENODEV), cpu out of range (ERANGE), a bad mode.
 *  4. msr_init(-1): the process-wide session, ended by msr_finalize.
 * At the end: no child process, zombie or descriptor is left.
 */
#include "check.h"

#include <pthread.h>

#define NTHREADS 8
#define NOPS 500

static pthread_barrier_t all_open;

struct worker {
    int cpu;
    int fd;
    long bad;
};

static void *worker(void *arg)
{
    struct worker *w = arg;
    int fd = -1;
    errno = -1;
    accessClient_init(&fd);
    if (errno != 0 || fd < 0) {
        CHECK(0, "thread %d: accessClient_init gave fd %d errno %d (%s)", w->cpu, fd, errno,
              strerror(errno));
        w->bad++;
    }
    w->fd = fd;
    /* every thread holds its own session here: NTHREADS daemons at once */
    pthread_barrier_wait(&all_open);
    pthread_barrier_wait(&all_open);

    uint64_t seed = UINT64_C(0x2545F4914F6CDD1D) * (uint64_t)(w->cpu + 1);
    for (int i = 0; i < NOPS && fd >= 0; i++) {
        int k = i % NUM_COUNTERS;
        uint64_t val = xorshift64(&seed) & CTR_MASK;
        errno = -1;
        if (i % 2) {
            msr_twrite(fd, w->cpu, REG_PERF_CTR(k), val);
        } else {
            accessClient_write(fd, w->cpu, DAEMON_AD_MSR, REG_PERF_CTR(k), val);
        }
        if (errno != 0) {
            CHECK(0, "thread %d op %d: write errno %d (%s)", w->cpu, i, errno, strerror(errno));
            w->bad++;
            continue;
        }
        errno = -1;
        uint64_t got = (i % 3) ? msr_tread(fd, w->cpu, REG_PERF_CTR(k))
                               : accessClient_read(fd, w->cpu, DAEMON_AD_MSR, REG_PERF_CTR(k));
        if (errno != 0 || got != val) {
            CHECK(0, "thread %d op %d: read 0x%" PRIx64 " errno %d, wrote 0x%" PRIx64, w->cpu, i,
                  got, errno, val);
            w->bad++;
        }
    }
    if (fd >= 0)
        CHECK_FILE((uint32_t)w->cpu, REG_PERF_CTR((NOPS - 1) % NUM_COUNTERS),
                   msr_tread(fd, w->cpu, REG_PERF_CTR((NOPS - 1) % NUM_COUNTERS)),
                   "thread %d: last value in the register file", w->cpu);
    /* a denied write through the thread's own session */
    errno = 0;
    msr_twrite(fd, w->cpu, REG_SYSCFG, 0x1);
    CHECK(errno == EPERM, "thread %d: SYSCFG write errno %d, expected EPERM", w->cpu, errno);

    errno = -1;
    accessClient_finalize(fd);
    CHECK(errno == 0, "thread %d: accessClient_finalize errno %d", w->cpu, errno);
    return NULL;
}

static void global_session(void)
{
    int fd = -1;
    accessClient_setaccessmode(DAEMON_AM_ACCESS_D);
    errno = -1;
    accessClient_init(&fd);
    CHECK(errno == 0 && fd >= 0, "accessClient_init: fd %d errno %d", fd, errno);
    errno = -1;
    msr_init(fd);
    CHECK(errno == 0, "msr_init(%d): errno %d", fd, errno);

    for (int cpu = 0; cpu < (int)SIM_NCPUS; cpu++) {
        uint64_t val = UINT64_C(0x1000) + (uint64_t)cpu;
        errno = -1;
        msr_write(cpu, REG_PERF_CTR(0), val);
        CHECK(errno == 0, "msr_write cpu %d: errno %d", cpu, errno);
        errno = -1;
        uint64_t got = msr_read(cpu, REG_PERF_CTR(0));
        CHECK(errno == 0, "msr_read cpu %d: errno %d", cpu, errno);
        CHECK_U64(got, val, "msr_read cpu %d after msr_write", cpu);
        CHECK_FILE((uint32_t)cpu, REG_PERF_CTR(0), val, "register file cpu %d", cpu);
    }
    /* masked write: HWCR takes only bit 30 */
    FILE_PUT(1, REG_HWCR, UINT64_C(0x5));
    errno = -1;
    msr_write(1, REG_HWCR, ~UINT64_C(0));
    CHECK(errno == 0, "masked HWCR write: errno %d", errno);
    CHECK_U64(msr_read(1, REG_HWCR), UINT64_C(0x5) | HWCR_MASK, "HWCR after a masked write");
    /* denied: SYSCFG write, EFER read */
    FILE_PUT(2, REG_SYSCFG, UINT64_C(0x77));
    errno = 0;
    msr_write(2, REG_SYSCFG, 0);
    CHECK(errno == EPERM, "SYSCFG write: errno %d, expected EPERM", errno);
    CHECK_FILE(2, REG_SYSCFG, UINT64_C(0x77), "SYSCFG after the denied write");
    errno = 0;
    uint64_t efer = msr_read(0, REG_EFER);
    CHECK(errno == EPERM && efer == 0, "EFER read: %" PRIu64 " errno %d, expected 0 and EPERM", efer,
          errno);
    /* cpu out of range */
    errno = 0;
    (void)msr_read((int)SIM_NCPUS, REG_PERF_CTR(0));
    CHECK(errno == ERANGE, "msr_read cpu %u: errno %d, expected ERANGE", SIM_NCPUS, errno);
    errno = 0;
    (void)msr_read(-1, REG_PERF_CTR(0));
    CHECK(errno == ERANGE, "msr_read cpu -1: errno %d, expected ERANGE", errno);
    /* LIKWID 3's PCI device numbers are not the MSR */
    errno = 0;
    (void)accessClient_read(fd, 0, 0, REG_PERF_CTR(0));
    CHECK(errno == EFAULT, "accessClient_read device 0 (a LIKWID 3 PCI device): errno %d", errno);

    msr_finalize();
    errno = -1;
    accessClient_finalize(fd);
    CHECK(errno == 0, "accessClient_finalize(%d): errno %d", fd, errno);
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF, "descriptor %d still open after finalize", fd);
    CHECK_NO_CHILDREN("after accessClient_finalize of the global session");

    /* the finalized descriptor is gone for good */
    errno = 0;
    accessClient_finalize(fd);
    CHECK(errno == EBADF, "second accessClient_finalize(%d): errno %d, expected EBADF", fd, errno);
    errno = 0;
    (void)msr_tread(fd, 0, REG_PERF_CTR(0));
    CHECK(errno == EBADF, "msr_tread on a finalized fd: errno %d, expected EBADF", errno);
}

static void error_cases(void)
{
    errno = 0;
    accessClient_finalize(12345);
    CHECK(errno == EBADF, "accessClient_finalize(12345): errno %d, expected EBADF", errno);
    errno = 0;
    (void)msr_tread(STDOUT_FILENO, 0, REG_PERF_CTR(0));
    CHECK(errno == EBADF, "msr_tread(stdout): errno %d, expected EBADF", errno);
    errno = 0;
    msr_twrite(777, 0, REG_PERF_CTR(0), 1);
    CHECK(errno == EBADF, "msr_twrite(777): errno %d, expected EBADF", errno);
    errno = 0;
    msr_init(4242);
    CHECK(errno == EBADF, "msr_init(4242): errno %d, expected EBADF", errno);
    errno = 0;
    accessClient_init(NULL);
    CHECK(errno == EFAULT, "accessClient_init(NULL): errno %d, expected EFAULT", errno);
    CHECK_NO_CHILDREN("after accessClient_init(NULL)");

    /* pci_*: MSR_DEV or an index outside the numbering is EFAULT; an uncore device this
     * (simulated AMD) machine does not have is ENODEV. test_pci.c reads a real one. */
    pci_init(-1);
    errno = 0;
    CHECK(pci_read(0, 0, 0x10) == 0 && errno == EFAULT, "pci_read MSR_DEV: errno %d, expected EFAULT", errno);
    errno = 0;
    CHECK(pci_read(0, 999, 0x10) == 0 && errno == EFAULT, "pci_read 999: errno %d, expected EFAULT", errno);
    errno = 0;
    pci_write(0, 3, 0x10, 1);
    CHECK(errno == ENODEV, "pci_write: errno %d, expected ENODEV", errno);
    errno = 0;
    CHECK(pci_tread(-1, 0, 1, 0x10) == 0 && errno == ENODEV, "pci_tread: errno %d, expected ENODEV", errno);
    errno = 0;
    pci_twrite(-1, 0, 1, 0x10, 1);
    CHECK(errno == ENODEV, "pci_twrite: errno %d, expected ENODEV", errno);
    pci_finalize();

    struct capture cap;
    char text[4096];
    int captured = capture_begin(&cap) == 0;
    errno = 0;
    accessClient_setaccessmode(7);
    int saved = errno;
    if (captured) {
        capture_end(&cap, text, sizeof text);
        CHECK_ONE_LIB_LINE(text, "accessClient_setaccessmode(7)");
    }
    CHECK(saved == EINVAL, "accessClient_setaccessmode(7): errno %d, expected EINVAL", saved);
}

static void process_session(void)
{
    errno = -1;
    msr_init(-1);
    CHECK(errno == 0, "msr_init(-1): errno %d", errno);
    errno = -1;
    msr_write(3, REG_PERF_CTL(1), 0x430076);
    CHECK(errno == 0, "msr_write via the process-wide session: errno %d", errno);
    errno = -1;
    CHECK_U64(msr_read(3, REG_PERF_CTL(1)), UINT64_C(0x430076), "process-wide session read");
    CHECK(errno == 0, "msr_read via the process-wide session: errno %d", errno);
    errno = -1;
    CHECK_U64(msr_tread(-1, 3, REG_PERF_CTL(1)), UINT64_C(0x430076), "msr_tread(-1)");
    CHECK(find_daemon() > 0, "a daemon serves the process-wide session");
    msr_finalize();
    CHECK_NO_CHILDREN("after msr_finalize of the process-wide session");
}

int main(void)
{
    guard_alarm(90);
    /* The library prints its "likwid-access: " line only when asked to. */
    setenv("LIKWID_ACCESS_VERBOSE", "1", 1);
    int fds0 = count_fds();

    global_session();
    error_cases();

    static struct worker w[NTHREADS];
    pthread_t th[NTHREADS];
    pthread_barrier_init(&all_open, NULL, NTHREADS + 1);
    for (int t = 0; t < NTHREADS; t++) {
        w[t].cpu = t;
        int e = pthread_create(&th[t], NULL, worker, &w[t]);
        if (e != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(e));
            return 1;
        }
    }
    pthread_barrier_wait(&all_open);
    struct child_info ci[64];
    int daemons = list_children(ci, 64);
    CHECK(daemons == NTHREADS, "%d daemons while %d threads hold sessions, expected one each",
          daemons, NTHREADS);
    for (int a = 0; a < NTHREADS; a++)
        for (int b = a + 1; b < NTHREADS; b++)
            CHECK(w[a].fd != w[b].fd, "threads %d and %d share descriptor %d", a, b, w[a].fd);
    pthread_barrier_wait(&all_open);
    long bad = 0;
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        bad += w[t].bad;
    }
    pthread_barrier_destroy(&all_open);
    CHECK(bad == 0, "%ld failed operations in the threads", bad);
    CHECK_NO_CHILDREN("after every thread's accessClient_finalize");

    process_session();

    int fds1 = count_fds();
    CHECK(fds1 == fds0, "%d descriptors open at the end, %d at the start", fds1, fds0);
    return test_result("test_likwid3");
}
