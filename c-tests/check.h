/*
 * check.h - tiny test helpers shared by the likwid-access C tests.
 *
 * Include this header FIRST in every test (it sets _GNU_SOURCE).
 * Every helper is `static inline`, so unused ones cause no warnings.
 *
 * Conventions: a test's main() returns 0 on pass, 1 on failure and 77 when
 * it skips itself.  Every failed check prints one line to stderr with the
 * values that were seen.
 */
#ifndef LIKWID_ACCESS_C_TESTS_CHECK_H
#define LIKWID_ACCESS_C_TESTS_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "likwid_access.h"

#define TEST_SKIP 77

/* ------------------------------------------------------------------ */
/* Registers of the zen4 policy (AMD family 0x19)                      */
/* ------------------------------------------------------------------ */
#define REG_PERF_CTL(n) (0xC0010200u + 2u * (uint32_t)(n))
#define REG_PERF_CTR(n) (0xC0010201u + 2u * (uint32_t)(n))
#define NUM_COUNTERS 6
#define REG_HWCR 0xC0010015u
#define HWCR_MASK UINT64_C(0x40000000)
#define REG_SYSCFG 0xC0010010u
#define REG_EFER 0xC0000080u
#define REG_TSC 0x10u
#define REG_BOGUS 0x1234u
#define CTR_MASK ((UINT64_C(1) << 48) - 1)

/* Number of CPUs of the default simulated machine made by run.sh. */
#define SIM_NCPUS 8u

/* ------------------------------------------------------------------ */
/* Failure accounting                                                  */
/* ------------------------------------------------------------------ */
static inline atomic_int *check_failure_counter(void)
{
    static atomic_int failures;
    return &failures;
}

static inline int check_failures(void)
{
    return atomic_load(check_failure_counter());
}

static inline void check_failed(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void check_failed(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(check_failure_counter(), 1);
    fprintf(stderr, "CHECK FAILED %s:%d: %s\n", file, line, msg);
    fflush(stderr);
}

/* CHECK(cond, printf-format, args...) - the format is mandatory. */
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond))                                                       \
            check_failed(__FILE__, __LINE__, __VA_ARGS__);                 \
    } while (0)

/* Human-readable name for a (negative) errno return value. */
static inline const char *rc_name(int rc)
{
    static _Thread_local char buf[64];
    switch (rc) {
    case 0: return "0";
    case -EPERM: return "-EPERM";
    case -ENOENT: return "-ENOENT";
    case -EIO: return "-EIO";
    case -ENXIO: return "-ENXIO";
    case -EBUSY: return "-EBUSY";
    case -EFAULT: return "-EFAULT";
    case -ENODEV: return "-ENODEV";
    case -EINVAL: return "-EINVAL";
    case -EPIPE: return "-EPIPE";
    case -ERANGE: return "-ERANGE";
    case -ENOLCK: return "-ENOLCK";
    case -ENOTSUP: return "-ENOTSUP";
    case -ENOTCONN: return "-ENOTCONN";
    case -ECONNRESET: return "-ECONNRESET";
    case -ECONNREFUSED: return "-ECONNREFUSED";
    case -ETIMEDOUT: return "-ETIMEDOUT";
    case -EACCES: return "-EACCES";
    default: break;
    }
    if (rc < 0)
        snprintf(buf, sizeof buf, "-%d (%s)", -rc, strerror(-rc));
    else
        snprintf(buf, sizeof buf, "%d", rc);
    return buf;
}

/* Return code comparison with readable output. */
static inline void check_rc_impl(const char *file, int line, const char *expr, int got,
                                 int expected, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static inline void check_rc_impl(const char *file, int line, const char *expr, int got,
                                 int expected, const char *fmt, ...)
{
    if (got == expected)
        return;
    char ctx[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    char gs[64];
    snprintf(gs, sizeof gs, "%s", rc_name(got));
    check_failed(file, line, "%s: %s returned %s, expected %s", ctx, expr, gs, rc_name(expected));
}

#define CHECK_RC(rc_expr, expected, ...)                                   \
    check_rc_impl(__FILE__, __LINE__, #rc_expr, (rc_expr), (expected), __VA_ARGS__)

static inline void check_u64_impl(const char *file, int line, uint64_t got, uint64_t expected,
                                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static inline void check_u64_impl(const char *file, int line, uint64_t got, uint64_t expected,
                                  const char *fmt, ...)
{
    if (got == expected)
        return;
    char ctx[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    check_failed(file, line, "%s: got 0x%016" PRIx64 ", expected 0x%016" PRIx64, ctx, got,
                 expected);
}

#define CHECK_U64(actual, expected, ...)                                   \
    check_u64_impl(__FILE__, __LINE__, (actual), (expected), __VA_ARGS__)

static inline int test_result(const char *name)
{
    int n = check_failures();
    if (n == 0) {
        printf("%s: all checks passed\n", name);
        fflush(stdout);
        return 0;
    }
    fprintf(stderr, "%s: %d check(s) failed\n", name, n);
    fflush(stderr);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Time, alarm guard                                                   */
/* ------------------------------------------------------------------ */
static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Slow-down factor when running under valgrind (run.sh exports VALGRIND=1). */
static inline unsigned slow_factor(void)
{
    const char *v = getenv("VALGRIND");
    return (v && strcmp(v, "1") == 0) ? 5u : 1u;
}

/* A hang must fail the test instead of blocking: SIGALRM kills us. */
static inline void guard_alarm(unsigned seconds)
{
    alarm(seconds * slow_factor());
}

/* ------------------------------------------------------------------ */
/* The simulated machine                                               */
/* ------------------------------------------------------------------ */
static inline const char *sim_root(void)
{
    const char *r = getenv("LIKWID_ACCESS_ROOT");
    if (!r || !*r) {
        fprintf(stderr, "LIKWID_ACCESS_ROOT is not set (run the tests via c-tests/run.sh)\n");
        exit(2);
    }
    return r;
}

static inline void msr_file_path(char *buf, size_t len, uint32_t cpu)
{
    snprintf(buf, len, "%s/dev/cpu/%" PRIu32 "/msr", sim_root(), cpu);
}

/* Register R lives at byte offset 8*R, 8 bytes little endian. 0 or -errno. */
static inline int msr_file_read(uint32_t cpu, uint32_t reg, uint64_t *value)
{
    char path[4096];
    unsigned char b[8];
    msr_file_path(path, sizeof path, cpu);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    memset(b, 0, sizeof b);
    ssize_t n = pread(fd, b, sizeof b, (off_t)reg * 8);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    /* a short read means EOF: bytes past the end of a file read as 0 */
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    *value = v;
    return 0;
}

static inline int msr_file_write(uint32_t cpu, uint32_t reg, uint64_t value)
{
    char path[4096];
    unsigned char b[8];
    msr_file_path(path, sizeof path, cpu);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(value >> (8 * i));
    ssize_t n = pwrite(fd, b, sizeof b, (off_t)reg * 8);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    return n == 8 ? 0 : -EIO;
}

/* Verify the register file holds `expected`. */
static inline void check_file_impl(const char *file, int line, uint32_t cpu, uint32_t reg,
                                   uint64_t expected, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static inline void check_file_impl(const char *file, int line, uint32_t cpu, uint32_t reg,
                                   uint64_t expected, const char *fmt, ...)
{
    char ctx[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    uint64_t v = 0;
    int rc = msr_file_read(cpu, reg, &v);
    if (rc != 0)
        check_failed(file, line, "%s: cannot read register file cpu %" PRIu32 " reg 0x%" PRIx32
                     ": %s", ctx, cpu, reg, rc_name(rc));
    else if (v != expected)
        check_failed(file, line, "%s: register file cpu %" PRIu32 " reg 0x%" PRIx32
                     " holds 0x%016" PRIx64 ", expected 0x%016" PRIx64, ctx, cpu, reg, v, expected);
}

#define CHECK_FILE(cpu, reg, expected, ...)                                \
    check_file_impl(__FILE__, __LINE__, (cpu), (reg), (expected), __VA_ARGS__)

/* Prefill a register file, failing loudly (counts as a check failure). */
#define FILE_PUT(cpu, reg, value)                                          \
    do {                                                                   \
        int file_put_rc_ = msr_file_write((cpu), (reg), (value));          \
        CHECK(file_put_rc_ == 0, "cannot prefill register file cpu %u reg 0x%x: %s", \
              (unsigned)(cpu), (unsigned)(reg), rc_name(file_put_rc_));    \
    } while (0)

/* ------------------------------------------------------------------ */
/* Child processes (scan /proc/<pid>/stat for ppid == getpid())        */
/* ------------------------------------------------------------------ */
struct child_info {
    pid_t pid;
    char state;
    char comm[64];
};

/* Parse /proc/<pid>/stat. Returns 0 on success. */
static inline int proc_stat(pid_t pid, char *state, pid_t *ppid, char *comm, size_t commlen)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *lp = strchr(buf, '(');
    char *rp = strrchr(buf, ')');
    if (!lp || !rp || rp < lp)
        return -1;
    if (comm && commlen) {
        size_t len = (size_t)(rp - lp - 1);
        if (len >= commlen)
            len = commlen - 1;
        memcpy(comm, lp + 1, len);
        comm[len] = '\0';
    }
    char st = 0;
    int pp = 0;
    if (sscanf(rp + 1, " %c %d", &st, &pp) != 2)
        return -1;
    if (state)
        *state = st;
    if (ppid)
        *ppid = (pid_t)pp;
    return 0;
}

/* List the children of this process. Returns how many (up to max stored). */
static inline int list_children(struct child_info *out, int max)
{
    pid_t self = getpid();
    int count = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(de->d_name);
        char st;
        pid_t pp;
        char comm[64];
        if (proc_stat(pid, &st, &pp, comm, sizeof comm) != 0)
            continue;
        if (pp != self)
            continue;
        if (count < max && out) {
            out[count].pid = pid;
            out[count].state = st;
            snprintf(out[count].comm, sizeof out[count].comm, "%s", comm);
        }
        count++;
    }
    closedir(d);
    return count;
}

/* Print every remaining child; returns the number of children. */
static inline int report_children(const char *when)
{
    struct child_info ci[64];
    int n = list_children(ci, 64);
    for (int i = 0; i < n && i < 64; i++)
        fprintf(stderr, "  %s: child pid %d comm '%s' state %c%s\n", when, (int)ci[i].pid,
                ci[i].comm, ci[i].state, ci[i].state == 'Z' ? " (ZOMBIE)" : "");
    return n;
}

/* CHECK that no child process (running or zombie) of ours exists. */
static inline void check_no_children_impl(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void check_no_children_impl(const char *file, int line, const char *fmt, ...)
{
    char ctx[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    int n = list_children(NULL, 0);
    if (n != 0) {
        check_failed(file, line, "%s: %d child process(es) remain", ctx, n);
        report_children(ctx);
    }
}

#define CHECK_NO_CHILDREN(...) check_no_children_impl(__FILE__, __LINE__, __VA_ARGS__)

/* The daemon: a child whose comm is "likwid-accessD". -1 if none. */
static inline pid_t find_daemon(void)
{
    struct child_info ci[64];
    int n = list_children(ci, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (strcmp(ci[i].comm, "likwid-accessD") == 0 && ci[i].state != 'Z')
            return ci[i].pid;
    return -1;
}

/* Entries of a directory other than . and .. (e.g. /proc/PID/task, /proc/PID/fd); -1 if unreadable. */
static inline int count_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Number of open file descriptors of this process. */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (isdigit((unsigned char)de->d_name[0]))
            n++;
    closedir(d);
    return n - 1; /* the directory stream itself */
}

/* ------------------------------------------------------------------ */
/* stderr capture (to check the library's "likwid-access: " line)      */
/* ------------------------------------------------------------------ */
struct capture {
    int saved_fd;
    int file_fd;
};

static inline int capture_begin(struct capture *c)
{
    char tmpl[] = "/tmp/lwa-ctest-stderr-XXXXXX";
    fflush(stderr);
    c->saved_fd = -1;
    c->file_fd = mkstemp(tmpl);
    if (c->file_fd < 0)
        return -1;
    unlink(tmpl);
    c->saved_fd = dup(STDERR_FILENO);
    if (c->saved_fd < 0 || dup2(c->file_fd, STDERR_FILENO) < 0) {
        close(c->file_fd);
        c->file_fd = -1;
        return -1;
    }
    return 0;
}

/* Restore stderr, return what was written (NUL-terminated) in buf. */
static inline void capture_end(struct capture *c, char *buf, size_t len)
{
    buf[0] = '\0';
    fflush(stderr);
    if (c->saved_fd >= 0) {
        dup2(c->saved_fd, STDERR_FILENO);
        close(c->saved_fd);
        c->saved_fd = -1;
    }
    if (c->file_fd >= 0) {
        ssize_t n = pread(c->file_fd, buf, len - 1, 0);
        buf[n > 0 ? (size_t)n : 0] = '\0';
        close(c->file_fd);
        c->file_fd = -1;
    }
}

/* Count lines beginning with prefix. */
static inline int count_prefixed_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    const char *p = text;
    while (*p) {
        if (strncmp(p, prefix, pl) == 0)
            n++;
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    return n;
}

/* Echo captured text (indented) so the log shows what the library said. */
static inline void echo_captured(const char *what, const char *text)
{
    const char *p = text;
    if (!*p) {
        fprintf(stderr, "  [%s: library wrote nothing to stderr]\n", what);
        return;
    }
    while (*p) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(stderr, "  [%s stderr] %.*s\n", what, len, p);
        if (!nl)
            break;
        p = nl + 1;
    }
}

#define LIB_PREFIX "likwid-access: "

/* Exactly one line from the library starting with "likwid-access: ". */
static inline void check_one_lib_line_impl(const char *file, int line, const char *text,
                                           const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline void check_one_lib_line_impl(const char *file, int line, const char *text,
                                           const char *fmt, ...)
{
    char ctx[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    int n = count_prefixed_lines(text, LIB_PREFIX);
    if (n != 1)
        check_failed(file, line, "%s: expected exactly one stderr line starting with '" LIB_PREFIX
                     "', saw %d", ctx, n);
}

#define CHECK_ONE_LIB_LINE(text, ...)                                      \
    check_one_lib_line_impl(__FILE__, __LINE__, (text), __VA_ARGS__)

/* A 64-bit xorshift generator (deterministic per seed). */
static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* HPMinit + HPMaddThread for cpus [0, n); returns number of failures. */
static inline int start_session(uint32_t ncpus)
{
    int bad = 0;
    int rc = HPMinit();
    CHECK_RC(rc, 0, "HPMinit");
    if (rc != 0)
        bad++;
    for (uint32_t c = 0; c < ncpus; c++) {
        rc = HPMaddThread(c);
        CHECK_RC(rc, 0, "HPMaddThread(%u)", (unsigned)c);
        if (rc != 0)
            bad++;
    }
    return bad;
}

#endif /* LIKWID_ACCESS_C_TESTS_CHECK_H */
