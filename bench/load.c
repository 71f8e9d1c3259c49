/* load: many processes and threads through our library at once, plus raw LIKWID 5 clients
 * (written from the protocol, as c-tests/raw_likwid_client.c), each thread checking its own
 * values; then nothing may be left behind. Prints per-pair latency percentiles.
 *
 * usage: load PROCS THREADS PAIRS RAW DAEMON [MAX_P99_MS]
 *   Machine: a simulated zen4 with at least 2*PROCS CPUs (LIKWID_ACCESS_ROOT, or /dev/cpu of
 *   register-store files in a mount namespace when RAW > 0: LIKWID's start has no environment).
 *   Process p, thread t owns cpu (2p + t/4) mod NCPU, PERF_CTR(t mod 4); raw client k owns
 *   cpu k mod NCPU, PERF_CTR4. Odd processes leave without HPMfinalize: their daemons must
 *   restore the counters to 0 from the journal; the others keep their last values (EXIT).
 * Exit 0 when every value was right, nothing is left, and the worst process's p99 is within
 * MAX_P99_MS (when given). */
#include "../c-tests/check.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>

typedef struct { uint32_t cpu, reg; uint64_t data; int32_t device, type, errorcode; } Record;

static unsigned procs, threads, pairs, raws, ncpus;
static const char *daemon_path;
static float *lat;            /* [procs*threads + raws][pairs] microseconds, shared */
static atomic_int *shared;    /* [0] ready, [1] go, [2] errors */

static uint32_t lib_cpu(unsigned p, unsigned t) { return (2 * p + t / 4) % ncpus; }
static uint32_t lib_reg(unsigned t) { return REG_PERF_CTR(t % 4); }
static uint64_t value(unsigned who, unsigned i) { return ((uint64_t)(who + 1) << 20 | i) & CTR_MASK; }
static double now_us(void) { return now_ms() * 1000.0; }

static void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error(const char *fmt, ...)
{
    if (atomic_fetch_add(&shared[2], 1) < 20) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
}

static void wait_go(void)
{
    atomic_fetch_add(&shared[0], 1);
    while (!atomic_load(&shared[1]))
        sleep_ms(1);
}

struct thread_arg { unsigned p, t; };

static void *lib_thread(void *arg)
{
    struct thread_arg *a = arg;
    unsigned who = a->p * threads + a->t;
    uint32_t cpu = lib_cpu(a->p, a->t), reg = lib_reg(a->t);
    int rc = HPMaddThread(cpu);
    if (rc != 0)
        error("process %u thread %u: HPMaddThread(%u) = %s", a->p, a->t, cpu, rc_name(rc));
    wait_go();
    for (unsigned i = 0; i < pairs && rc == 0; i++) {
        uint64_t got = 0, want = value(who, i);
        double t0 = now_us();
        rc = HPMwrite(cpu, MSR_DEV, reg, want);
        if (rc == 0)
            rc = HPMread(cpu, MSR_DEV, reg, &got);
        lat[(size_t)who * pairs + i] = (float)(now_us() - t0);
        if (rc != 0)
            error("process %u thread %u pair %u: %s", a->p, a->t, i, rc_name(rc));
        else if (got != want)
            error("process %u thread %u pair %u: read %#" PRIx64 ", wrote %#" PRIx64, a->p, a->t, i, got, want);
    }
    return NULL;
}

static int lib_process(unsigned p)
{
    pthread_t tid[threads];
    struct thread_arg args[threads];
    int fds = count_fds();
    HPMmode(1);
    if (HPMinit() != 0)
        error("process %u: HPMinit failed", p);
    for (unsigned t = 0; t < threads; t++) {
        args[t] = (struct thread_arg){ p, t };
        pthread_create(&tid[t], NULL, lib_thread, &args[t]);
    }
    for (unsigned t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    if (p % 2)
        _exit(0); /* no EXIT: the daemon restores from its journal */
    HPMfinalize();
    if (count_fds() != fds)
        error("process %u: %d descriptors after HPMfinalize, %d before", p, count_fds(), fds);
    return 0;
}

static int raw_process(unsigned k)
{
    unsigned who = procs * threads + k;
    uint32_t cpu = k % ncpus, reg = REG_PERF_CTR(4);
    pid_t pid = fork();
    if (pid == 0) {
        char *none[] = { NULL };
        execve(daemon_path, none, none);
        _exit(127);
    }
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof addr.sun_path, "/tmp/likwid-%d", (int)pid);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), connected = -1;
    for (int tries = 0; tries < 4000 && connected != 0; tries++) { /* LIKWID: 1000 x 2.5 ms; load is slower */
        struct timespec pause = { 0, 2500000 };
        nanosleep(&pause, NULL);
        connected = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    }
    if (connected != 0)
        error("raw client %u: no connection to %s", k, addr.sun_path);
    wait_go();
    for (unsigned i = 0; i < pairs && connected == 0; i++) {
        Record w = { cpu, reg, value(who, i), 0, 1, 3 }, r = { cpu, reg, 0, 0, 0, 3 };
        double t0 = now_us();
        int ok = write(fd, &w, sizeof w) == sizeof w && read(fd, &w, sizeof w) == sizeof w &&
                 write(fd, &r, sizeof r) == sizeof r && read(fd, &r, sizeof r) == sizeof r;
        lat[(size_t)who * pairs + i] = (float)(now_us() - t0);
        if (!ok || w.errorcode || r.errorcode || r.data != value(who, i)) {
            error("raw client %u pair %u: codes %d/%d, read %#" PRIx64, k, i, w.errorcode, r.errorcode, r.data);
            break;
        }
    }
    Record bye = { 0, 0, 0, 0, 3, 3 };
    if (write(fd, &bye, sizeof bye) != sizeof bye)
        error("raw client %u: EXIT not sent", k);
    close(fd);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        error("raw client %u: daemon status %#x", k, status);
    if (access(addr.sun_path, F_OK) == 0)
        error("raw client %u: %s left behind", k, addr.sun_path);
    return 0;
}

static uint64_t stored(uint32_t cpu, uint32_t reg)
{
    const char *root = getenv("LIKWID_ACCESS_ROOT");
    char path[4096];
    uint64_t v = ~0ULL;
    snprintf(path, sizeof path, "%s/dev/cpu/%u/msr", root ? root : "", cpu);
    int fd = open(path, O_RDONLY);
    if (fd < 0 || pread(fd, &v, 8, (off_t)reg * 8) != 8)
        error("cannot read %s", path);
    if (fd >= 0)
        close(fd);
    return v;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* p-th percentile (0..100) of n samples, sorted in place. */
static double pct(float *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_float);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s PROCS THREADS PAIRS RAW DAEMON [MAX_P99_MS]\n", argv[0]);
        return 2;
    }
    procs = (unsigned)atoi(argv[1]), threads = (unsigned)atoi(argv[2]), pairs = (unsigned)atoi(argv[3]);
    raws = (unsigned)atoi(argv[4]), daemon_path = argv[5];
    double max_p99 = argc > 6 ? atof(argv[6]) : 0;
    ncpus = (unsigned)sysconf(_SC_NPROCESSORS_CONF);
    const char *root = getenv("LIKWID_ACCESS_ROOT");
    char dir[4096];
    for (ncpus = 0;; ncpus++) {
        snprintf(dir, sizeof dir, "%s/dev/cpu/%u/msr", root ? root : "", ncpus);
        if (access(dir, F_OK) != 0)
            break;
    }
    if (ncpus < 2 * procs || ncpus < raws || threads > 8 || !pairs) {
        fprintf(stderr, "load: need >= %u simulated CPUs (have %u), <= 8 threads, pairs > 0\n", 2 * procs, ncpus);
        return 2;
    }
    size_t slots = (size_t)(procs * threads + raws) * pairs;
    lat = mmap(NULL, slots * sizeof *lat, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    /* Daemons of processes that leave without HPMfinalize are re-parented to us: reap them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    for (unsigned n = 0; n < procs + raws; n++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(n < procs ? lib_process(n) : raw_process(n - procs));
    }
    while ((unsigned)atomic_load(&shared[0]) < procs * threads + raws)
        sleep_ms(1);
    double t0 = now_ms();
    atomic_store(&shared[1], 1);
    int status;
    pid_t pid;
    while ((pid = wait(&status)) > 0 || errno == EINTR)
        if (pid > 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
            error("process %d ended with status %#x", (int)pid, status);
    double wall = now_ms() - t0;
    /* Nothing left: no child of ours in /proc (wait() said ECHILD), the counters as promised. */
    for (unsigned p = 0; p < procs; p++)
        for (unsigned t = 0; t < threads; t++) {
            uint64_t want = p % 2 ? 0 : value(p * threads + t, pairs - 1), got = stored(lib_cpu(p, t), lib_reg(t));
            if (got != want)
                error("process %u thread %u: register %#" PRIx64 " after the run, want %#" PRIx64
                      " (%s)", p, t, got, want, p % 2 ? "restored" : "kept");
        }
    for (unsigned k = 0; k < raws; k++)
        if (stored(k % ncpus, REG_PERF_CTR(4)) != value(procs * threads + k, pairs - 1))
            error("raw client %u: register not kept after EXIT", k);

    double worst = 0;
    unsigned worst_p = 0;
    for (unsigned p = 0; p < procs; p++) {
        double p99 = pct(lat + (size_t)p * threads * pairs, (size_t)threads * pairs, 99);
        if (p99 > worst)
            worst = p99, worst_p = p;
    }
    size_t lib_n = (size_t)procs * threads * pairs;
    printf("load: %u processes x %u threads x %u write+read pairs + %u raw LIKWID clients x %u pairs, %ld CPUs online\n",
           procs, threads, pairs, raws, pairs, sysconf(_SC_NPROCESSORS_ONLN));
    printf("  wall %.3f s; library pairs p50 %.2f ms, p99 %.2f ms, max %.2f ms; worst process (%u) p99 %.2f ms\n",
           wall / 1000, pct(lat, lib_n, 50), pct(lat, lib_n, 99), pct(lat, lib_n, 100), worst_p, worst);
    if (raws)
        printf("  raw LIKWID client pairs p50 %.2f ms, p99 %.2f ms\n", pct(lat + lib_n, (size_t)raws * pairs, 50),
               pct(lat + lib_n, (size_t)raws * pairs, 99));
    int errors = atomic_load(&shared[2]);
    printf("  errors %d (values, return codes, descriptors, sockets, restored/kept registers, children)\n", errors);
    if (max_p99 > 0 && worst > max_p99) {
        printf("FAIL: worst process p99 %.2f ms exceeds %.2f ms\n", worst, max_p99);
        return 1;
    }
    return errors ? 1 : 0;
}
