/* make bench: side-by-side medians from one run on one machine (see bench/bench.sh).
 * `bench run MSR_FILE REG OUR_DAEMON [LIKWID_DAEMON]`: each round starts our daemon and
 * LIKWID's (when given) through the same client code and reads the same register of the same
 * register-store file; beside them, the floors: a direct pread of it and a bare AF_UNIX
 * ping-pong of one 32-byte record between two processes placed like the application and the
 * daemon (unpinned, and both pinned to CPU 0). Everything is interleaved round by round so the
 * machine's noise falls on all of them. Start-up on simulated machines (BENCH_SIM2, BENCH_SIM256:
 * LIKWID_ACCESS_ROOT directories) is timed in the same rounds. With BENCH_BEFORE=DAEMON (a
 * likwid-accessD built from an earlier commit), that daemon runs the same sessions and start-ups
 * in the same rounds, through the same library, for a before/after table. With BENCH_SERVICE
 * set, sessions with the node's service (started by bench.sh) run in the same rounds too; the
 * service is not pinned with the client (it is not its child).
 * `bench cg REG N`: start, N batches of 1024 reads, stop; `bench cgs REG N`: N * 1000 single
 * reads; `bench cgp REG N`: N batches of 1024 PCI reads on a simulated Skylake-SP (all run under
 * callgrind by bench.sh).
 * `bench start REG`: start, one read, stop (run under strace by bench.sh).
 * `bench starts REG ROUNDS DAEMON...`: start-ups only (bench.sh with BENCH_STARTS=ROUNDS).
 * After the table, `run` prints each daemon's private memory by mapping (/proc/PID/smaps). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "likwid_access.h"

enum { ROUNDS = 15, SINGLES = 2000, BATCHES = 40, MAXS = ROUNDS * SINGLES, MSG = 32, STARTS = 4 };
/* The flatness check after the rounds: this many reads in batches of 1024, and singles. */
enum { FLAT_BATCHED = 10 * 1000 * 1024, FLAT_SINGLES = 100000 };

static uint32_t reg;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

typedef struct {
    double *v;
    int n;
} Samples;

static void add(Samples *s, double x) { s->v[s->n++] = x; }

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(Samples *s)
{
    if (s->n == 0)
        return 0.0 / 0.0;
    qsort(s->v, (size_t)s->n, sizeof(double), cmp);
    return s->n % 2 ? s->v[s->n / 2] : (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
}

static Samples make(int n)
{
    Samples s = { calloc((size_t)n, sizeof(double)), 0 };
    if (!s.v)
        exit(2);
    return s;
}

/* Private memory (Private_Clean + Private_Dirty of smaps_rollup), in MB: what the daemon
 * costs beyond the shared libc and program pages. */
static double private_mb_of(int pid, int dirty_only)
{
    char path[64], line[256];
    long kb, sum = 0;
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0.0 / 0.0;
    while (fgets(line, sizeof line, f))
        if ((!dirty_only && sscanf(line, "Private_Clean: %ld kB", &kb) == 1) ||
            sscanf(line, "Private_Dirty: %ld kB", &kb) == 1)
            sum += kb;
    fclose(f);
    return (double)sum / 1024.0;
}

static double private_mb(int pid) { return private_mb_of(pid, 0); }

/* The same, by mapping (/proc/PID/smaps; mappings of one file or kind with the same
 * permissions summed), in kB, with the total's Pss (shared pages divided among their users),
 * into `out`: where the private memory is. */
static void private_by_mapping(int pid, const char *who, char *out, size_t len)
{
    enum { MAX = 32 };
    char path[64], line[512], names[MAX][80];
    long clean[MAX] = { 0 }, dirty[MAX] = { 0 }, kb, pss = 0, tc = 0, td = 0;
    int n = 0, cur = -1;
    snprintf(path, sizeof path, "/proc/%d/smaps", pid);
    FILE *f = fopen(path, "r");
    size_t used = (size_t)snprintf(out, len, "%s (pid %d), kB private (clean + dirty):\n", who, pid);
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char range[64], perm[8], file[400] = "";
        if (sscanf(line, "%63s %7s %*s %*s %*s %399[^\n]", range, perm, file) >= 2 && strchr(range, '-') &&
            !strchr(range, ':')) {
            const char *base = strrchr(file, '/');
            char name[80];
            snprintf(name, sizeof name, "%s %s", base ? base + 1 : (file[0] ? file : "[anon]"), perm);
            for (cur = 0; cur < n && strcmp(names[cur], name) != 0; cur++)
                ;
            if (cur == n && n < MAX)
                snprintf(names[n++], sizeof names[0], "%s", name);
            if (cur == MAX)
                cur = -1;
        } else if (sscanf(line, "Pss: %ld kB", &kb) == 1)
            pss += kb;
        else if (cur >= 0 && sscanf(line, "Private_Clean: %ld kB", &kb) == 1)
            clean[cur] += kb, tc += kb;
        else if (cur >= 0 && sscanf(line, "Private_Dirty: %ld kB", &kb) == 1)
            dirty[cur] += kb, td += kb;
    }
    fclose(f);
    for (int i = 0; i < n && used < len; i++)
        if (clean[i] + dirty[i] > 0)
            used += (size_t)snprintf(out + used, len - used, "  %-40s %5ld + %4ld\n", names[i], clean[i], dirty[i]);
    if (used < len)
        snprintf(out + used, len - used, "  %-40s %5ld + %4ld = %ld kB; Pss %ld kB\n", "total", tc, td, tc + td, pss);
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    if (cpu >= 0)
        CPU_SET(cpu, &s);
    else
        for (int i = 0; i < CPU_SETSIZE; i++)
            CPU_SET(i, &s);
    sched_setaffinity(0, sizeof s, &s);
}

typedef struct {
    Samples single, pinned, startup, idle, busy, dirty, b64, b1024;
} Daemon;

/* The daemon path that means "the node's service": no LIKWID_ACCESSD, so the library connects
 * to /run/likwid-access/socket (bench.sh starts `likwid-accessD --service` when BENCH_SERVICE). */
static const char SERVICE[] = "service";

static int start(const char *path)
{
    if (path == SERVICE)
        unsetenv("LIKWID_ACCESSD");
    else if (path)
        setenv("LIKWID_ACCESSD", path, 1);
    uint64_t v;
    HPMinit();
    int rc = HPMaddThread(0);
    if (rc == 0)
        rc = HPMread(0, MSR_DEV, reg, &v);
    if (rc != 0) {
        fprintf(stderr, "bench: %s: first read failed: %d\n", path ? path : "daemon", rc);
        HPMfinalize();
    }
    return rc;
}

static int batches(int size, int count, Samples *per_read)
{
    static HPMBatchOp ops[1024];
    for (int i = 0; i < size; i++)
        ops[i] = (HPMBatchOp){ .cpu = 0, .dev = MSR_DEV, .reg = reg, .op = HPM_BATCH_READ };
    for (int i = 0; i < count; i++) {
        double a = now_us();
        if (HPMbatch(ops, (uint32_t)size) != 0) {
            fprintf(stderr, "bench: batch of %d had failures\n", size);
            return 1;
        }
        if (per_read)
            add(per_read, (now_us() - a) / size);
    }
    return 0;
}

/* One session with the daemon at `path` (pinned: both processes on CPU 0, the daemon
 * inheriting the application's affinity): start-up, single reads, batches, memory. */
static int session(const char *path, Daemon *d, int pinned)
{
    if (pinned)
        pin(0);
    double t0 = now_us();
    int rc = start(path);
    if (rc != 0)
        return rc;
    if (!pinned)
        add(&d->startup, (now_us() - t0) / 1000.0);
    add(&d->idle, private_mb(HPMdaemonPid()));
    uint64_t v;
    for (int i = 0; i < SINGLES; i++) {
        double a = now_us();
        HPMread(0, MSR_DEV, reg, &v);
        add(pinned ? &d->pinned : &d->single, now_us() - a);
    }
    if (!pinned && d->b64.v && (batches(64, BATCHES, &d->b64) || batches(1024, BATCHES, &d->b1024)))
        return 1;
    if (!pinned) {
        add(&d->busy, private_mb(HPMdaemonPid()));
        add(&d->dirty, private_mb_of(HPMdaemonPid(), 1));
    }
    HPMfinalize();
    pin(-1);
    return 0;
}

/* The floor of a round trip: one 32-byte record each way over an AF_UNIX stream socketpair
 * between a parent and a child process, as between the application and its daemon. */
static int pingpong(Samples *s, int pinned)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 1;
    if (pinned)
        pin(0);
    pid_t child = fork();
    if (child == 0) {
        char m[MSG];
        close(sv[0]);
        while (read(sv[1], m, MSG) == MSG && write(sv[1], m, MSG) == MSG)
            ;
        _exit(0);
    }
    close(sv[1]);
    char m[MSG] = { 0 };
    int rc = 0;
    for (int i = 0; i < SINGLES && rc == 0; i++) {
        double a = now_us();
        if (write(sv[0], m, MSG) != MSG || read(sv[0], m, MSG) != MSG)
            rc = 1;
        add(s, now_us() - a);
    }
    close(sv[0]);
    waitpid(child, NULL, 0);
    pin(-1);
    return rc;
}

/* Whole reads and writes of `len` bytes on a stream socket (a 32 KiB message may come in pieces). */
static int read_full(int fd, char *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            return 1;
        got += (size_t)n;
    }
    return 0;
}

/* The floor of a batch of 1024 reads: 1024 32-byte records to a child process in one write, which
 * reads them all, preads the register once per record into it and writes them back in one write,
 * over an AF_UNIX stream socketpair, unpinned like ours' batches. What no daemon speaking records
 * over a socket can beat: the batch's IPC and its preads, no checks, no encoding. */
static int batch_floor(Samples *s, int fd, off_t off)
{
    static char req[1024 * MSG], rep[1024 * MSG];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        close(sv[0]);
        while (read_full(sv[1], rep, sizeof rep) == 0) {
            for (int i = 0; i < 1024; i++)
                if (pread(fd, rep + i * MSG + 8, 8, off) != 8)
                    _exit(1);
            if (write(sv[1], rep, sizeof rep) != (ssize_t)sizeof rep)
                _exit(1);
        }
        _exit(0);
    }
    close(sv[1]);
    int rc = 0;
    for (int i = 0; i < BATCHES && rc == 0; i++) {
        double a = now_us();
        if (write(sv[0], req, sizeof req) != (ssize_t)sizeof req || read_full(sv[0], rep, sizeof rep))
            rc = 1;
        add(s, (now_us() - a) / 1024);
    }
    close(sv[0]);
    waitpid(child, NULL, 0);
    return rc;
}

static double startup_ms(const char *root)
{
    setenv("LIKWID_ACCESS_ROOT", root, 1);
    double t0 = now_us();
    int rc = start(NULL);
    double t = (now_us() - t0) / 1000.0;
    if (rc == 0)
        HPMfinalize();
    unsetenv("LIKWID_ACCESS_ROOT");
    return rc == 0 ? t : -1;
}

/* The floor of a spawn: posix_spawn of /bin/true (a small dynamic libc program) to its exit. */
static double spawn_floor_ms(void)
{
    extern char **environ;
    char *argv[] = { "true", NULL };
    pid_t pid;
    double t0 = now_us();
    if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0)
        return -1;
    waitpid(pid, NULL, 0);
    return (now_us() - t0) / 1000.0;
}

/* The other floor of a big site's start-up: opening every CPU's msr file of the simulated root
 * (read-write, as the daemon must before it drops its privileges for good), then closing them. */
static double open_floor_ms(const char *root, int cpus)
{
    static int fds[4096];
    char path[4096];
    int n = 0;
    double t0 = now_us();
    for (int cpu = 0; cpu < cpus && cpu < 4096; cpu++) {
        snprintf(path, sizeof path, "%s/dev/cpu/%d/msr", root, cpu);
        if ((fds[n] = open(path, O_RDWR | O_CLOEXEC)) >= 0)
            n++;
    }
    double t = (now_us() - t0) / 1000.0;
    while (n > 0)
        close(fds[--n]);
    return t;
}

static void row(const char *what, double value, const char *unit, const char *ratio)
{
    printf("| %-50s | %10.2f %-2s | %s |\n", what, value, unit, ratio);
}

/* The ping-pong floor, our single read and (theirs >= 0) LIKWID's, placed as `where` says. */
static void single_read_rows(const char *where, double floor, double ours, double theirs)
{
    char label[96], buf[160];
    snprintf(label, sizeof label, "floor: bare AF_UNIX 32-byte ping-pong, %s", where);
    row(label, floor, "us", "1.00x");
    snprintf(label, sizeof label, "ours: single read, %s", where);
    snprintf(buf, sizeof buf, "%.2fx the ping-pong (<= 1.1x)", ours / floor);
    row(label, ours, "us", buf);
    if (theirs >= 0) {
        snprintf(label, sizeof label, "LIKWID 5.2.2 daemon: single read, %s", where);
        snprintf(buf, sizeof buf, "%.2fx the ping-pong; ours/LIKWID %.2f", theirs / floor, ours / theirs);
        row(label, theirs, "us", buf);
    }
}

/* A before/after row: both medians, their ratio, and the after figure against its floor. */
static void ba_row(const char *what, double before, double after, const char *unit, const char *vs)
{
    printf("| %-46s | %9.2f %-2s | %9.2f %-2s | %5.2fx | %s |\n", what, before, unit, after, unit, after / before, vs);
}

/* The memory figures at the end of `run` (and of `mem`): each daemon, and the floor program, in
 * one session of its own after its requests, while it blocks in read for the next one. */
typedef struct {
    /* Ours idle, after the batches and the singles, LIKWID's idle and after its singles, ours
     * after 1% of the batches; the floor program's. */
    double flat[5], floor;
    char maps_ours[4096], maps_likwid[4096], maps_floor[4096];
} Memory;

/* Waits (up to a second) until `pid` sleeps, in its read for the next record. */
static void wait_asleep(int pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(path, "r");
        char *state = f && fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
        if (f)
            fclose(f);
        if (!state || state[1] == '\0' || state[2] == 'S')
            return;
        usleep(1000);
    }
}

/* The floor (bench/floor-rust.rs at BENCH_FLOOR_RUST): spawned with one end of a socketpair
 * as standard input, as our library spawns the daemon; 1000 records echoed, then measured
 * while it blocks in read. */
static int floor_memory(const char *path, Memory *m)
{
    extern char **environ;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    char *argv[] = { "floor-rust", NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        return 1;
    }
    char r[MSG] = { 0 };
    for (int i = 0; i < 1000 && rc == 0; i++)
        if (write(sv[0], r, MSG) != MSG || read(sv[0], r, MSG) != MSG)
            rc = 1;
    wait_asleep(pid);
    m->floor = private_mb(pid);
    private_by_mapping(pid, "floor (bench/floor-rust.rs)", m->maps_floor, sizeof m->maps_floor);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return rc;
}

/* Flatness: private memory before and after many requests, one session each; ours, the floor
 * program (when BENCH_FLOOR_RUST names it), then LIKWID's, one at a time: processes mapping the
 * same shared library at the same moment would share its pages, which then count as no one's
 * private memory. */
static int measure_memory(const char *ours_path, const char *likwid_path, Memory *m)
{
    const char *floor_path = getenv("BENCH_FLOOR_RUST");
    for (int i = 0; i < 5; i++)
        m->flat[i] = 0.0 / 0.0;
    m->floor = 0.0 / 0.0;
    m->maps_ours[0] = m->maps_likwid[0] = m->maps_floor[0] = '\0';
    if (start(ours_path) == 0) {
        uint64_t v;
        m->flat[0] = private_mb(HPMdaemonPid());
        /* After 1% of the load, then after all of it: flat means no growth in between. */
        if (batches(1024, FLAT_BATCHED / 1024 / 100, NULL))
            return 1;
        m->flat[4] = private_mb(HPMdaemonPid());
        if (batches(1024, FLAT_BATCHED / 1024 / 100 * 99, NULL))
            return 1;
        for (int i = 0; i < FLAT_SINGLES; i++)
            HPMread(0, MSR_DEV, reg, &v);
        wait_asleep(HPMdaemonPid());
        m->flat[1] = private_mb(HPMdaemonPid());
        private_by_mapping(HPMdaemonPid(), "ours", m->maps_ours, sizeof m->maps_ours);
        HPMfinalize();
    }
    if (floor_path && floor_memory(floor_path, m)) {
        fprintf(stderr, "bench: %s: no echo\n", floor_path);
        return 1;
    }
    if (likwid_path && start(likwid_path) == 0) {
        uint64_t v;
        m->flat[2] = private_mb(HPMdaemonPid());
        for (int i = 0; i < FLAT_SINGLES; i++)
            HPMread(0, MSR_DEV, reg, &v);
        wait_asleep(HPMdaemonPid());
        m->flat[3] = private_mb(HPMdaemonPid());
        private_by_mapping(HPMdaemonPid(), "LIKWID 5.2.2", m->maps_likwid, sizeof m->maps_likwid);
        HPMfinalize();
    }
    return 0;
}

static void print_memory(const Memory *m, const char *likwid_path)
{
    char buf[160];
    snprintf(buf, sizeof buf, "%.2f MB idle, %.2f after 1%% (flat: equal)", m->flat[0], m->flat[4]);
    row("ours: private memory after 10.24 M batched + 100 k single reads", m->flat[1], "MB", buf);
    if (likwid_path) {
        snprintf(buf, sizeof buf, "from %.2f MB idle; ours/LIKWID %.2f (<= 1.0)", m->flat[2], m->flat[1] / m->flat[3]);
        row("LIKWID 5.2.2: private memory after 100 k single reads", m->flat[3], "MB", buf);
    } else {
        printf("\nLIKWID column SKIPPED: no LIKWID daemon given (install Debian's likwid and run as root).\n");
    }
    if (m->floor == m->floor) {
        int n = snprintf(buf, sizeof buf, "ours/floor %.2f", m->flat[1] / m->floor);
        if (likwid_path)
            snprintf(buf + n, sizeof buf - (size_t)n, "; floor/LIKWID %.2f", m->floor / m->flat[3]);
        row("floor: Rust program that only blocks in read", m->floor, "MB", buf);
    }
    printf("\nPrivate memory by mapping after the flatness sessions above:\n%s%s%s", m->maps_ours, m->maps_floor,
           m->maps_likwid);
}

static int run(int argc, char **argv)
{
    const char *file = argv[2], *ours_path = argv[4], *likwid_path = argc > 5 ? argv[5] : NULL;
    const char *sim2 = getenv("BENCH_SIM2"), *sim256 = getenv("BENCH_SIM256"), *sim256u = getenv("BENCH_SIM256U");
    int fd = open(file, O_RDONLY);
    if (fd < 0) {
        perror(file);
        return 2;
    }
    /* The register store holds R at 8*R; LIKWID's daemon reads offset R of any file. Both
     * offsets cost the same pread; the floor uses ours. */
    off_t off = (off_t)reg * 8;
    Daemon ours = { make(MAXS), make(MAXS), make(ROUNDS), make(ROUNDS), make(ROUNDS), make(ROUNDS),
                    make(ROUNDS * BATCHES), make(ROUNDS * BATCHES) };
    Daemon theirs = { make(MAXS), make(MAXS), make(ROUNDS), make(ROUNDS), make(ROUNDS), make(ROUNDS), { 0, 0 }, { 0, 0 } };
    const char *before_path = getenv("BENCH_BEFORE");
    int service = getenv("BENCH_SERVICE") != NULL;
    Daemon svc = { make(MAXS), make(MAXS), make(ROUNDS), make(ROUNDS), make(ROUNDS), make(ROUNDS), { 0, 0 }, { 0, 0 } };
    Daemon prev = { make(MAXS), make(MAXS), make(ROUNDS), make(ROUNDS), make(ROUNDS), make(ROUNDS),
                    make(ROUNDS * BATCHES), make(ROUNDS * BATCHES) };
    Samples p2 = make(ROUNDS * STARTS), p256 = make(ROUNDS * STARTS), p256u = make(ROUNDS * STARTS);
    Samples direct = make(MAXS), bfloor = make(ROUNDS * BATCHES), pp = make(MAXS), pp_pinned = make(MAXS), s2 = make(ROUNDS * STARTS), s256 = make(ROUNDS * STARTS), s256u = make(ROUNDS * STARTS),
            floor_spawn = make(ROUNDS), floor_open256 = make(ROUNDS);
    for (int r = 0; r < ROUNDS; r++) {
        if (session(ours_path, &ours, 0) || session(ours_path, &ours, 1))
            return 1;
        if (likwid_path && (session(likwid_path, &theirs, 0) || session(likwid_path, &theirs, 1)))
            return 1;
        if (before_path && (session(before_path, &prev, 0) || session(before_path, &prev, 1)))
            return 1;
        if (service && (session(SERVICE, &svc, 0) || session(SERVICE, &svc, 1)))
            return 1;
        if (pingpong(&pp, 0) || pingpong(&pp_pinned, 1) || batch_floor(&bfloor, fd, off))
            return 1;
        /* Timed per run of 1024, as the batches are. Timed one by one, each sample also held a
         * clock read: the floor read 0.35 us in a run where a batched read, its pread
         * included, took 0.27 us. */
        for (int i = 0; i < BATCHES; i++) {
            uint64_t v;
            double a = now_us();
            for (int j = 0; j < 1024; j++)
                if (pread(fd, &v, 8, off) != 8)
                    return 1;
            add(&direct, (now_us() - a) / 1024);
        }
        /* Start-ups are short and the machine's noise comes in bursts: several per round,
         * ours and the earlier daemon alternating sample by sample, each going first in turn. */
        for (int k = 0; sim2 && sim256 && k < STARTS; k++) {
            for (int i = 0; i < (before_path ? 2 : 1); i++) {
                int before = before_path && (i + k) % 2;
                setenv("LIKWID_ACCESSD", before ? before_path : ours_path, 1);
                add(before ? &p2 : &s2, startup_ms(sim2));
                add(before ? &p256 : &s256, startup_ms(sim256));
                if (sim256u)
                    add(before ? &p256u : &s256u, startup_ms(sim256u));
            }
        }
        add(&floor_spawn, spawn_floor_ms());
        if (sim256)
            add(&floor_open256, open_floor_ms(sim256, 256));
    }
    Memory mem;
    if (measure_memory(ours_path, likwid_path, &mem))
        return 1;
    double d = median(&direct), ppu = median(&pp), ppp = median(&pp_pinned);
    double os = median(&ours.single), op = median(&ours.pinned), ob64 = median(&ours.b64), ob1k = median(&ours.b1024);
    double ost = median(&ours.startup), oidle = median(&ours.idle), obusy = median(&ours.busy);
    double ts = median(&theirs.single), tp = median(&theirs.pinned), tst = median(&theirs.startup);
    double tidle = median(&theirs.idle), tbusy = median(&theirs.busy);
    double odirty = median(&ours.dirty), tdirty = median(&theirs.dirty);
    char buf[160];
    printf("Medians of %d interleaved rounds (%d single reads unpinned and %d pinned, %d batches of 64 and "
           "of 1024, %d ping-pongs unpinned and pinned, %d runs of 1024 preads, %d start-ups of each simulated "
           "machine per round); ratios from the same run.\n\n",
           ROUNDS, SINGLES, SINGLES, BATCHES, SINGLES, BATCHES, STARTS);
    printf("| %-50s | %13s | %s |\n|---|---:|---|\n", "measurement", "median", "ratio (target)");
    single_read_rows("unpinned", ppu, os, likwid_path ? ts : -1);
    single_read_rows("both on CPU 0", ppp, op, likwid_path ? tp : -1);
    row("floor: direct pread of the register", d, "us", "1.00x");
    snprintf(buf, sizeof buf, "%.2fx the pread", ob64 / d);
    row("ours: batch of 64 reads, per read", ob64, "us", buf);
    double bf = median(&bfloor);
    snprintf(buf, sizeof buf, "%.2fx the pread", bf / d);
    row("floor: 1024 bare records each way, a pread each, per read", bf, "us", buf);
    snprintf(buf, sizeof buf, "%.2fx the pread (<= 1.2x); %.2fx the batch floor", ob1k / d, ob1k / bf);
    row("ours: batch of 1024 reads, per read", ob1k, "us", buf);
    row("floor: posix_spawn of /bin/true to its exit", median(&floor_spawn), "ms", "");
    row("ours: spawn to first reply (host-CPU sim, 2 CPUs)", ost, "ms", "(<= 1 ms)");
    if (likwid_path) {
        snprintf(buf, sizeof buf, "ours/LIKWID %.2f", ost / tst);
        row("LIKWID 5.2.2: spawn to first reply (2 CPUs)", tst, "ms", buf);
    }
    if (sim2 && sim256) {
        row("ours: spawn to first reply, sim root, 2 CPUs", median(&s2), "ms", "(<= 1 ms)");
        if (sim256u)
            row("ours: spawn to first reply, 256 CPUs, uncore PCI only", median(&s256u), "ms", "");
        snprintf(buf, sizeof buf, "%.2fx the 2-CPU sim (<= 2 ms); %.2fx the two floors", median(&s256) / median(&s2),
                 median(&s256) / (median(&floor_spawn) + median(&floor_open256)));
        row("ours: spawn to first reply, 256 CPUs, 600 PCI fns", median(&s256), "ms", buf);
        row("floor: opening the 256 CPUs' msr files", median(&floor_open256), "ms", "(the spawn floor + this: the two floors)");
    }
    if (service) {
        snprintf(buf, sizeof buf, "(<= 0.2 ms); %.2fx ours spawned", median(&svc.startup) / ost);
        row("service: connect to first reply", median(&svc.startup), "ms", buf);
        snprintf(buf, sizeof buf, "%.2fx ours spawned (<= 1.0x); %.2fx the ping-pong", median(&svc.single) / os,
                 median(&svc.single) / ppu);
        row("service: single read, unpinned", median(&svc.single), "us", buf);
        snprintf(buf, sizeof buf, "%.2fx ours spawned (<= 1.0x); %.2fx the ping-pong", median(&svc.pinned) / op,
                 median(&svc.pinned) / ppp);
        row("service: single read, client on CPU 0", median(&svc.pinned), "us", buf);
    }
    row("ours: daemon private memory, idle", oidle, "MB", "");
    row("ours: daemon private memory, after a session", obusy, "MB", "");
    if (likwid_path) {
        snprintf(buf, sizeof buf, "ours/LIKWID %.2f (<= 1.0)", oidle / tidle);
        row("LIKWID 5.2.2: daemon private memory, idle", tidle, "MB", buf);
        snprintf(buf, sizeof buf, "ours/LIKWID %.2f (<= 1.0)", obusy / tbusy);
        row("LIKWID 5.2.2: daemon private memory, after a session", tbusy, "MB", buf);
    }
    row("ours: of which Private_Dirty (not file pages)", odirty, "MB", "");
    if (likwid_path) {
        snprintf(buf, sizeof buf, "ours/LIKWID %.2f", odirty / tdirty);
        row("LIKWID 5.2.2: of which Private_Dirty", tdirty, "MB", buf);
    }
    print_memory(&mem, likwid_path);
    if (!before_path)
        return 0;
    printf("\nBefore/after: the daemon at BENCH_BEFORE (%s) beside ours, same library, same rounds:\n\n", before_path);
    printf("| %-46s | %12s | %12s | after/before | after vs its floor (target) |\n|---|---:|---:|---:|---|\n",
           "measurement", "before", "after");
    snprintf(buf, sizeof buf, "%.2fx the ping-pong (<= 1.1x)", os / ppu);
    ba_row("single read, unpinned", median(&prev.single), os, "us", buf);
    snprintf(buf, sizeof buf, "%.2fx the ping-pong (<= 1.1x)", op / ppp);
    ba_row("single read, both on CPU 0", median(&prev.pinned), op, "us", buf);
    snprintf(buf, sizeof buf, "%.2fx the pread", ob64 / d);
    ba_row("batch of 64 reads, per read", median(&prev.b64), ob64, "us", buf);
    snprintf(buf, sizeof buf, "%.2fx the pread (<= 1.2x)", ob1k / d);
    ba_row("batch of 1024 reads, per read", median(&prev.b1024), ob1k, "us", buf);
    snprintf(buf, sizeof buf, "%.2fx the spawn of /bin/true (<= 1 ms)", ost / median(&floor_spawn));
    ba_row("spawn to first reply (host-CPU sim, 2 CPUs)", median(&prev.startup), ost, "ms", buf);
    if (sim2 && sim256) {
        ba_row("spawn to first reply, sim root, 2 CPUs", median(&p2), median(&s2), "ms", "(<= 1 ms)");
        if (sim256u)
            ba_row("spawn to first reply, 256 CPUs, uncore PCI only", median(&p256u), median(&s256u), "ms", "");
        ba_row("spawn to first reply, 256 CPUs, 600 PCI fns", median(&p256), median(&s256), "ms", "(<= 2 ms)");
    }
    ba_row("daemon private memory, idle", median(&prev.idle), oidle, "MB", "");
    ba_row("daemon private memory, after a session", median(&prev.busy), obusy, "MB", "");
    ba_row("of which Private_Dirty", median(&prev.dirty), odirty, "MB", "");
    return 0;
}

/* `bench starts REG ROUNDS DAEMON...`: start-ups only, in seconds rather than minutes, for working on
 * them (bench.sh with BENCH_STARTS=ROUNDS): per round the two floors, then each daemon (up to 4,
 * taking turns at going first) started on the three simulated roots. Medians. */
static int starts(int rounds, int n, char **daemons)
{
    const char *roots[3] = { getenv("BENCH_SIM2"), getenv("BENCH_SIM256U"), getenv("BENCH_SIM256") };
    if (n < 1 || n > 4 || rounds < 1 || !roots[0] || !roots[1] || !roots[2])
        return 2;
    Samples spawn = make(rounds), open256 = make(rounds), s[4][3];
    for (int d = 0; d < n; d++)
        for (int r = 0; r < 3; r++)
            s[d][r] = make(rounds);
    for (int i = 0; i < rounds; i++) {
        add(&spawn, spawn_floor_ms());
        add(&open256, open_floor_ms(roots[2], 256));
        for (int k = 0; k < n; k++) {
            int d = (i + k) % n;
            setenv("LIKWID_ACCESSD", daemons[d], 1);
            for (int r = 0; r < 3; r++)
                add(&s[d][r], startup_ms(roots[r]));
        }
    }
    double fs = median(&spawn), fo = median(&open256);
    printf("Start-ups only: medians of %d interleaved rounds\n\n", rounds);
    printf("| %-44s | %8s | %8s | %8s |\n|---|---:|---:|---:|\n", "daemon (spawn to first reply, ms)", "2 CPUs",
           "256+29", "256+600");
    printf("| %-44s | %8.2f | %8s | %8.2f |\n", "floors: spawn of /bin/true; + 256 msr opens", fs, "", fs + fo);
    for (int d = 0; d < n; d++)
        printf("| %-44.44s | %8.2f | %8.2f | %8.2f |\n", daemons[d], median(&s[d][0]), median(&s[d][1]), median(&s[d][2]));
    printf("\n(opening the 256 msr files alone: %.2f ms; 256+29: 256 CPUs with their 29 uncore PCI functions,"
           " 256+600: padded to 600 functions; targets <= 1 ms and <= 2 ms)\n", fo);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "starts") == 0) {
        reg = (uint32_t)strtoul(argv[2], NULL, 0);
        return starts(atoi(argv[3]), argc - 4, argv + 4);
    }
    if (argc >= 4 && strcmp(argv[1], "mem") == 0) {
        /* `bench mem REG OUR_DAEMON [LIKWID_DAEMON]`: the memory figures only (BENCH_MEM=1). */
        reg = (uint32_t)strtoul(argv[2], NULL, 0);
        static Memory mem;
        if (measure_memory(argv[3], argc > 4 ? argv[4] : NULL, &mem))
            return 1;
        print_memory(&mem, argc > 4 ? argv[4] : NULL);
        return 0;
    }
    if (argc >= 5 && strcmp(argv[1], "run") == 0) {
        reg = (uint32_t)strtoul(argv[3], NULL, 0);
        return run(argc, argv);
    }
    if (argc == 4 && strcmp(argv[1], "cg") == 0) {
        reg = (uint32_t)strtoul(argv[2], NULL, 0);
        if (start(NULL) != 0 || batches(1024, atoi(argv[3]), NULL))
            return 1;
        HPMfinalize();
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "cgs") == 0) {
        reg = (uint32_t)strtoul(argv[2], NULL, 0);
        uint64_t v;
        int n = atoi(argv[3]) * 1000; /* once: in the loop it was 117 instructions per read */
        if (start(NULL) != 0)
            return 1;
        for (int i = 0; i < n; i++)
            if (HPMread(0, MSR_DEV, reg, &v) != 0)
                return 1;
        HPMfinalize();
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "cgw") == 0) {
        /* N * 1000 single writes of 0 and 7 in turn to a control register under a write mask,
         * as LIKWID's timeline mode writes IA32_PERF_GLOBAL_CTRL twice per CPU per interval. */
        reg = (uint32_t)strtoul(argv[2], NULL, 0);
        int n = atoi(argv[3]) * 1000;
        if (start(NULL) != 0)
            return 1;
        for (int i = 0; i < n; i++)
            if (HPMwrite(0, MSR_DEV, reg, (i & 1) ? 7 : 0) != 0)
                return 1;
        HPMfinalize();
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "cgp") == 0) {
        /* N batches of 1024 reads of a Skylake-SP's iMC counters (PCI_IMC_DEVICE_0_CH_0 = 5 in
         * LIKWID 5.2's numbering, MC_CHy_PCI_PMON_CTR0..3 at 0xA0-0xB8) on socket 0. */
        static HPMBatchOp ops[1024];
        for (int i = 0; i < 1024; i++)
            ops[i] = (HPMBatchOp){ .cpu = 0, .dev = 5, .reg = 0xA0 + 8 * (uint32_t)(i % 4), .op = HPM_BATCH_READ };
        reg = (uint32_t)strtoul(argv[2], NULL, 0); /* the first read, an MSR */
        if (start(NULL) != 0)
            return 1;
        for (int b = 0; b < atoi(argv[3]); b++)
            if (HPMbatch(ops, 1024) != 0) {
                fprintf(stderr, "bench: PCI batch failed: %d\n", ops[0].result);
                return 1;
            }
        HPMfinalize();
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "start") == 0) {
        reg = (uint32_t)strtoul(argv[2], NULL, 0);
        if (start(NULL) != 0)
            return 1;
        HPMfinalize();
        return 0;
    }
    fprintf(stderr, "usage: %s run MSR_FILE REG OUR_DAEMON [LIKWID_DAEMON] | mem REG OUR_DAEMON [LIKWID_DAEMON] | cg|cgs|cgw|cgp REG N | start REG | starts REG ROUNDS DAEMON...\n", argv[0]);
    return 2;
}
