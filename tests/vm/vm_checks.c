/*
 * vm_checks: the checks tests/vm/guest-init.sh runs inside Debian's kernel under qemu, on the
 * kernel's msr driver (/dev/cpu/N/msr, 8 bytes at offset = register; linux
 * arch/x86/kernel/msr.c). Each subcommand is one check: exit 0 pass, 1 fail (the values seen
 * on stderr), 77 skipped. The reference is always a pread of the character device by root.
 *
 *   vm_checks reads POLICY          root: HPMread of every listed register on every CPU equals
 *                                   the driver's value (or its error, as -EIO)
 *   vm_checks expect REG VALUE      root: on every CPU, HPMread and the driver both give VALUE
 *   vm_checks deny POLICY           root: unlisted registers with a real value are refused for
 *                                   read and write and keep their value; a listed one writes
 *   vm_checks batch POLICY          root: one HPMbatch of every listed register on every CPU
 *                                   equals the driver; the daemon runs one worker per CPU,
 *                                   pinned to it
 *   vm_checks offline POLICY        root: CPU 1 taken offline mid-session answers an error, CPU 0
 *                                   goes on, a new session refuses CPU 1; back online it reads
 *   vm_checks dump POLICY OUT       root: the driver's value of every listed register, per CPU
 *   vm_checks user DUMP CAPEFF      unprivileged, through a setuid/setcap daemon: the same
 *                                   values as DUMP, EFER refused, the daemon dropped to the user
 *   vm_checks refused ERRNO         HPMaddThread(0) fails with -ERRNO
 *   vm_checks open-denied PATH ERRNO  open(PATH) fails with ERRNO
 */
#include "check.h"

#include <sched.h>

#define MAX_REGS 4096
#define MAX_CPUS 64
#define REG_APIC_BASE 0x1Bu
#define REG_TSC_AUX 0xC0000103u

struct reg {
    uint32_t addr;
    uint64_t mask;
};

static struct reg regs[MAX_REGS];
static int nregs;
static uint32_t cpus[MAX_CPUS];
static int ncpus;

/* The addresses `likwid-access policy` prints ("0xA[-0xB] 0xMASK  # ..."), ranges expanded. */
static int load_policy(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0x", 2) != 0)
            continue;
        char *end;
        unsigned long first = strtoul(line, &end, 16), last = first;
        if (*end == '-')
            last = strtoul(end + 1, &end, 16);
        uint64_t mask = strtoull(end, NULL, 16);
        for (unsigned long a = first; a <= last && nregs < MAX_REGS; a++)
            regs[nregs++] = (struct reg){ (uint32_t)a, mask };
    }
    fclose(f);
    if (nregs == 0)
        fprintf(stderr, "no registers in %s\n", path);
    return nregs > 0 ? 0 : -1;
}

static int listed(uint32_t addr)
{
    for (int i = 0; i < nregs; i++)
        if (regs[i].addr == addr)
            return 1;
    return 0;
}

/* The CPUs with an msr device, sorted. */
static void find_cpus(void)
{
    DIR *d = opendir("/dev/cpu");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && ncpus < MAX_CPUS) {
        char path[300];
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof path, "/dev/cpu/%s/msr", de->d_name);
        if (access(path, F_OK) == 0)
            cpus[ncpus++] = (uint32_t)atoi(de->d_name);
    }
    if (d)
        closedir(d);
    for (int i = 1; i < ncpus; i++)
        for (int j = i; j > 0 && cpus[j - 1] > cpus[j]; j--) {
            uint32_t t = cpus[j];
            cpus[j] = cpus[j - 1];
            cpus[j - 1] = t;
        }
}

/* The driver's answer: 8 bytes at offset = register. 0 or -errno. The device stays open
 * (each syscall is slow under TCG); the driver checks the CPU on every access, not at open. */
static int driver_read(uint32_t cpu, uint32_t reg, uint64_t *v)
{
    static int fd_plus_one[MAX_CPUS + 1]; /* 0: not open yet */
    int slot = cpu < MAX_CPUS ? (int)cpu : MAX_CPUS;
    if (fd_plus_one[slot] == 0) {
        char path[64];
        snprintf(path, sizeof path, "/dev/cpu/%u/msr", (unsigned)cpu);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        fd_plus_one[slot] = fd + 1;
    }
    ssize_t n = pread(fd_plus_one[slot] - 1, v, sizeof *v, (off_t)reg);
    if (n < 0)
        return -errno;
    return n == 8 ? 0 : -EIO;
}

static int session(void)
{
    CHECK_RC(HPMinit(), 0, "HPMinit");
    for (int i = 0; i < ncpus; i++) {
        int rc = HPMaddThread(cpus[i]);
        CHECK_RC(rc, 0, "HPMaddThread(%u)", (unsigned)cpus[i]);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* The library's value against the driver's, read just before and after. A register that
 * changed meanwhile (a running counter) must lie between the two. Returns 1 when it matched. */
static int compare_one(uint32_t cpu, uint32_t reg, uint64_t got, int rc, int *nonzero)
{
    uint64_t before = 0, after = 0;
    int rb = driver_read(cpu, reg, &before);
    int ra = driver_read(cpu, reg, &after);
    (void)rb;
    if (ra != 0) {
        CHECK_RC(rc, -EIO, "cpu %u reg 0x%x: the driver answers %s", (unsigned)cpu, (unsigned)reg, rc_name(ra));
        return rc == -EIO;
    }
    if (rc != 0) {
        CHECK_RC(rc, 0, "cpu %u reg 0x%x (driver: 0x%" PRIx64 ")", (unsigned)cpu, (unsigned)reg, after);
        return 0;
    }
    if (got != 0)
        (*nonzero)++;
    if (before == after) {
        CHECK_U64(got, after, "cpu %u reg 0x%x: library against the driver", (unsigned)cpu, (unsigned)reg);
        return got == after;
    }
    CHECK(got >= before && got <= after, "cpu %u reg 0x%x: library 0x%" PRIx64 " outside the driver's 0x%" PRIx64
          "..0x%" PRIx64, (unsigned)cpu, (unsigned)reg, got, before, after);
    return got >= before && got <= after;
}

static int cmd_reads(void)
{
    if (session() != 0)
        return test_result("reads");
    int nonzero = 0, same = 0;
    for (int i = 0; i < nregs; i++)
        for (int c = 0; c < ncpus; c++) {
            uint64_t v = 0;
            int rc = HPMread(cpus[c], MSR_DEV, regs[i].addr, &v);
            same += compare_one(cpus[c], regs[i].addr, v, rc, &nonzero);
        }
    HPMfinalize();
    printf("%d registers x %d CPUs through HPMread: %d equal to the driver's pread at offset R, %d of them "
           "nonzero\n", nregs, ncpus, same, nonzero);
    return test_result("reads");
}

static int cmd_expect(uint32_t reg, uint64_t want)
{
    if (session() != 0)
        return test_result("expect");
    for (int c = 0; c < ncpus; c++) {
        uint64_t lib = 0, drv = 0;
        CHECK_RC(HPMread(cpus[c], MSR_DEV, reg, &lib), 0, "HPMread cpu %u reg 0x%x", (unsigned)cpus[c], reg);
        CHECK_RC(driver_read(cpus[c], reg, &drv), 0, "pread cpu %u reg 0x%x", (unsigned)cpus[c], reg);
        CHECK_U64(drv, want, "driver, cpu %u reg 0x%x", (unsigned)cpus[c], reg);
        CHECK_U64(lib, want, "library, cpu %u reg 0x%x", (unsigned)cpus[c], reg);
        printf("cpu %u reg 0x%x: library 0x%" PRIx64 ", driver 0x%" PRIx64 "\n", (unsigned)cpus[c], reg, lib, drv);
    }
    HPMfinalize();
    return test_result("expect");
}

static int cmd_deny(void)
{
    static const uint32_t candidates[] = { REG_APIC_BASE, REG_EFER, REG_TSC_AUX, REG_SYSCFG, 0x3A };
    if (session() != 0)
        return test_result("deny");
    int refused_nonzero = 0;
    for (size_t k = 0; k < sizeof candidates / sizeof *candidates; k++) {
        uint32_t reg = candidates[k];
        if (listed(reg))
            continue;
        for (int c = 0; c < ncpus; c++) {
            uint64_t before = 0, after = 0, v = 0x5a5a;
            if (driver_read(cpus[c], reg, &before) != 0)
                continue;
            CHECK_RC(HPMread(cpus[c], MSR_DEV, reg, &v), -EPERM, "read of unlisted 0x%x on cpu %u", reg,
                     (unsigned)cpus[c]);
            CHECK_U64(v, 0x5a5a, "a refused read leaves *data alone (0x%x cpu %u)", reg, (unsigned)cpus[c]);
            CHECK_RC(HPMwrite(cpus[c], MSR_DEV, reg, before ^ 1), -EPERM, "write of unlisted 0x%x on cpu %u", reg,
                     (unsigned)cpus[c]);
            CHECK_RC(driver_read(cpus[c], reg, &after), 0, "pread 0x%x after the refused write", reg);
            CHECK_U64(after, before, "0x%x on cpu %u after a refused write", reg, (unsigned)cpus[c]);
            if (before != 0)
                refused_nonzero++;
            printf("cpu %u reg 0x%x (driver 0x%" PRIx64 "): read and write refused\n", (unsigned)cpus[c], reg, before);
        }
    }
    CHECK(refused_nonzero > 0, "no refused register had a nonzero value at the driver (nothing proven)");
    /* A listed, writable register: writing its current value goes through the driver. */
    for (int i = 0; i < nregs; i++) {
        if (regs[i].mask == 0)
            continue;
        for (int c = 0; c < ncpus; c++) {
            uint64_t cur = 0;
            CHECK_RC(HPMread(cpus[c], MSR_DEV, regs[i].addr, &cur), 0, "read 0x%x", regs[i].addr);
            CHECK_RC(HPMwrite(cpus[c], MSR_DEV, regs[i].addr, cur), 0, "write of listed 0x%x on cpu %u",
                     regs[i].addr, (unsigned)cpus[c]);
        }
        printf("listed register 0x%x (mask 0x%" PRIx64 "): write accepted by the driver on every CPU\n",
               regs[i].addr, regs[i].mask);
        break;
    }
    HPMfinalize();
    return test_result("deny");
}

/* Threads of the daemon pinned to exactly one CPU: sets bit N of the mask for "N". */
static unsigned long pinned_workers(pid_t daemon)
{
    char path[320], line[256];
    unsigned long seen = 0;
    snprintf(path, sizeof path, "/proc/%d/task", (int)daemon);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/status", (int)daemon, de->d_name);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f)) {
            unsigned cpu;
            char extra;
            if (sscanf(line, "Cpus_allowed_list: %u%c", &cpu, &extra) == 2 && extra == '\n' && cpu < 64)
                seen |= 1ul << cpu;
        }
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return seen;
}

static void check_workers(const char *who)
{
    pid_t d = HPMdaemonPid();
    unsigned long pinned = pinned_workers(d);
    unsigned long want = 0;
    for (int c = 0; c < ncpus; c++)
        want |= 1ul << cpus[c];
    CHECK(d > 0 && (pinned & want) == want, "%s: daemon %d has threads pinned to CPUs mask 0x%lx, want 0x%lx", who,
          (int)d, pinned, want);
    printf("%s: daemon %d has a worker pinned to each CPU (mask 0x%lx)\n", who, (int)d, pinned & want);
}

static void batch_compare(void)
{
    size_t n = (size_t)nregs * (size_t)ncpus;
    HPMBatchOp *ops = calloc(n, sizeof *ops);
    CHECK(ops != NULL, "calloc");
    if (!ops)
        return;
    /* CPUs interleaved, so the daemon must split the batch between its workers. */
    for (int i = 0; i < nregs; i++)
        for (int c = 0; c < ncpus; c++)
            ops[(size_t)i * (size_t)ncpus + (size_t)c] =
                (HPMBatchOp){ .cpu = cpus[c], .dev = MSR_DEV, .reg = regs[i].addr, .op = HPM_BATCH_READ };
    int rc = HPMbatch(ops, (uint32_t)n);
    CHECK(rc >= 0, "HPMbatch of %zu reads returned %s", n, rc_name(rc));
    int same = 0, nonzero = 0;
    for (size_t k = 0; rc >= 0 && k < n; k++)
        same += compare_one(ops[k].cpu, ops[k].reg, ops[k].data, ops[k].result, &nonzero);
    printf("one HPMbatch of %zu reads over %d CPUs: %d equal to the driver, %d nonzero\n", n, ncpus, same, nonzero);
    free(ops);
    check_workers("root");
}

static int cmd_batch(void)
{
    if (session() != 0)
        return test_result("batch");
    batch_compare();
    HPMfinalize();
    return test_result("batch");
}

static int set_online(uint32_t cpu, int on)
{
    char path[96];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/online", (unsigned)cpu);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, on ? "1" : "0", 1);
    int err = errno;
    close(fd);
    return n == 1 ? 0 : -err;
}

static int cmd_offline(void)
{
    if (ncpus < 2 || cpus[1] != 1) {
        printf("SKIP: needs CPUs 0 and 1 (qemu -smp 2)\n");
        return TEST_SKIP;
    }
    /* A listed register; IA32_MISC_ENABLE has a value under TCG on Intel. */
    uint32_t reg = listed(0x1A0) ? 0x1A0 : regs[0].addr;
    uint64_t v = 0, drv = 0;
    if (session() != 0)
        return test_result("offline");
    CHECK_RC(HPMread(1, MSR_DEV, reg, &v), 0, "read cpu 1 while online");
    /* Workers exist for both CPUs before the CPU goes away. */
    HPMBatchOp ops[2] = { { .cpu = 0, .dev = MSR_DEV, .reg = reg, .op = HPM_BATCH_READ },
                          { .cpu = 1, .dev = MSR_DEV, .reg = reg, .op = HPM_BATCH_READ } };
    CHECK_RC(HPMbatch(ops, 2), 0, "batch on cpus 0 and 1 while online");

    int held = open("/dev/cpu/1/msr", O_RDONLY | O_CLOEXEC);
    CHECK(held >= 0, "open /dev/cpu/1/msr: %s", strerror(errno));
    CHECK_RC(set_online(1, 0), 0, "echo 0 > /sys/devices/system/cpu/cpu1/online");
    /* The driver's own answer on a descriptor opened before: ENXIO (arch/x86/lib/msr-smp.c). */
    ssize_t got = pread(held, &drv, sizeof drv, (off_t)reg);
    int err = got < 0 ? errno : 0;
    CHECK(got < 0 && err == ENXIO, "pread of offline cpu 1 on an open descriptor: %zd (%s), want ENXIO", got,
          strerror(err));
    close(held);
    double t0 = now_ms();
    int rc = HPMread(1, MSR_DEV, reg, &v);
    double ms = now_ms() - t0;
    CHECK(rc < 0 && rc != -ENOTCONN, "read cpu 1 while offline: %s, want an access error", rc_name(rc));
    CHECK(ms < 2000, "read cpu 1 while offline took %.0f ms", ms);
    printf("cpu 1 offline: HPMread answers %s in %.1f ms (the driver: %s; /dev/cpu/1/msr is %s)\n", rc_name(rc),
           ms, strerror(err), access("/dev/cpu/1/msr", F_OK) == 0 ? "still there" : "gone");
    CHECK_RC(HPMread(0, MSR_DEV, reg, &v), 0, "read cpu 0 while cpu 1 is offline");
    CHECK_RC(driver_read(0, reg, &drv), 0, "pread cpu 0");
    CHECK_U64(v, drv, "cpu 0 while cpu 1 is offline");
    ops[0].result = ops[1].result = 0;
    rc = HPMbatch(ops, 2);
    CHECK(rc == 1 && ops[0].result == 0 && ops[1].result < 0, "batch with cpu 1 offline: %s, results %s and %s",
          rc_name(rc), rc_name(ops[0].result), rc_name(ops[1].result));
    printf("batch with cpu 1 offline: cpu 0 %s, cpu 1 %s\n", rc_name(ops[0].result), rc_name(ops[1].result));

    /* A session started now sees no /dev/cpu/1/msr: cpu 1 is not on the machine for it. */
    pid_t first = HPMdaemonPid();
    pid_t child = fork();
    if (child == 0) {
        HPMfinalize();
        HPMinit();
        int add0 = HPMaddThread(0), add1 = HPMaddThread(1);
        uint64_t x = 0;
        int rd = HPMread(0, MSR_DEV, reg, &x);
        printf("new session while cpu 1 is offline: HPMaddThread(0) %s, HPMaddThread(1) %s, read cpu 0 %s\n",
               rc_name(add0), rc_name(add1), rc_name(rd));
        fflush(stdout);
        HPMfinalize();
        _exit(add0 == 0 && add1 == -ERANGE && rd == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "new session while cpu 1 is offline (status 0x%x)",
          status);

    CHECK_RC(set_online(1, 1), 0, "echo 1 > /sys/devices/system/cpu/cpu1/online");
    CHECK_RC(HPMread(1, MSR_DEV, reg, &v), 0, "read cpu 1 back online");
    CHECK_RC(driver_read(1, reg, &drv), 0, "pread cpu 1 back online");
    CHECK_U64(v, drv, "cpu 1 back online");
    ops[0].result = ops[1].result = -1;
    CHECK_RC(HPMbatch(ops, 2), 0, "batch on cpus 0 and 1 back online");
    CHECK(HPMdaemonPid() == first, "the session's daemon changed: %d, was %d", (int)HPMdaemonPid(), (int)first);
    printf("cpu 1 back online: the same daemon %d reads it again\n", (int)first);
    HPMfinalize();
    CHECK(report_children("after HPMfinalize") == 0, "processes left after HPMfinalize");
    return test_result("offline");
}

static int cmd_dump(const char *out)
{
    FILE *f = fopen(out, "w");
    if (!f)
        return 1;
    for (int i = 0; i < nregs; i++)
        for (int c = 0; c < ncpus; c++) {
            uint64_t a = 0, b = 0;
            if (driver_read(cpus[c], regs[i].addr, &a) == 0 && driver_read(cpus[c], regs[i].addr, &b) == 0 && a == b)
                fprintf(f, "%u 0x%x 0x%" PRIx64 "\n", (unsigned)cpus[c], regs[i].addr, a);
        }
    return fclose(f) == 0 ? 0 : 1;
}

static int status_hex(pid_t pid, const char *key, unsigned long long *v)
{
    char path[64], line[256];
    int found = 0;
    size_t klen = strlen(key);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            found = sscanf(line + klen + 1, "%llx", v) == 1;
    if (f)
        fclose(f);
    return found;
}

static int cmd_user(const char *dump, unsigned long long capeff)
{
    int fd = open("/dev/cpu/0/msr", O_RDONLY);
    CHECK(fd < 0 && errno == EACCES, "uid %u opens /dev/cpu/0/msr itself: %s", (unsigned)getuid(),
          fd < 0 ? strerror(errno) : "opened");
    if (fd >= 0)
        close(fd);
    if (session() != 0)
        return test_result("user");
    FILE *f = fopen(dump, "r");
    unsigned cpu, reg;
    uint64_t want;
    int n = 0, singles = 0, nonzero = 0;
    while (f && fscanf(f, "%u %x %" SCNx64, &cpu, &reg, &want) == 3) {
        /* One round trip each under TCG is slow: the first 64 and every nonzero one singly,
         * all of them in the batch below. */
        if (n++ >= 64 && want == 0)
            continue;
        uint64_t v = 0;
        CHECK_RC(HPMread(cpu, MSR_DEV, reg, &v), 0, "HPMread cpu %u reg 0x%x", cpu, reg);
        CHECK_U64(v, want, "cpu %u reg 0x%x through the daemon, against root's pread", cpu, reg);
        singles++;
        nonzero += v != 0;
    }
    if (f)
        fclose(f);
    CHECK(n > 0, "nothing read from %s", dump);
    printf("uid %u: %d single reads through the daemon equal root's preads (%d nonzero)\n", (unsigned)getuid(),
           singles, nonzero);
    for (int c = 0; c < ncpus; c++) {
        uint64_t v = 0;
        CHECK_RC(HPMread(cpus[c], MSR_DEV, REG_EFER, &v), -EPERM, "EFER on cpu %u", (unsigned)cpus[c]);
    }
    /* The same reads again as one batch, CPUs interleaved, through the dropped daemon's workers. */
    HPMBatchOp *ops = calloc((size_t)n, sizeof *ops);
    uint64_t *wants = calloc((size_t)n, sizeof *wants);
    f = fopen(dump, "r");
    int k = 0;
    while (ops && wants && f && k < n && fscanf(f, "%u %x %" SCNx64, &cpu, &reg, &want) == 3) {
        ops[k] = (HPMBatchOp){ .cpu = cpu, .dev = MSR_DEV, .reg = reg, .op = HPM_BATCH_READ };
        wants[k++] = want;
    }
    if (f)
        fclose(f);
    int rc = k > 0 ? HPMbatch(ops, (uint32_t)k) : -EINVAL;
    CHECK_RC(rc, 0, "HPMbatch of %d reads as uid %u", k, (unsigned)getuid());
    for (int i = 0; rc == 0 && i < k; i++)
        CHECK_U64(ops[i].data, wants[i], "batch op %d: cpu %u reg 0x%x", i, ops[i].cpu, ops[i].reg);
    printf("uid %u: one HPMbatch of %d reads equals root's preads\n", (unsigned)getuid(), k);
    free(ops);
    free(wants);
    check_workers("user");
    pid_t d = HPMdaemonPid();
    unsigned long long uid = 0, eff = ~0ull, prm = ~0ull, nnp = 0;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)d);
    FILE *s = fopen(path, "r");
    while (s && fgets(line, sizeof line, s)) {
        unsigned r, e, ss, fs;
        if (sscanf(line, "Uid: %u %u %u %u", &r, &e, &ss, &fs) == 4)
            uid = (r == getuid() && e == getuid() && ss == getuid() && fs == getuid());
        if (sscanf(line, "NoNewPrivs: %llu", &nnp) == 1)
            continue;
    }
    if (s)
        fclose(s);
    status_hex(d, "CapEff", &eff);
    status_hex(d, "CapPrm", &prm);
    CHECK(uid == 1, "daemon %d: Uid not all %u", (int)d, (unsigned)getuid());
    CHECK(eff == capeff && prm == capeff && nnp == 1, "daemon %d: CapEff %llx CapPrm %llx NoNewPrivs %llu, want %llx %llx 1",
          (int)d, eff, prm, nnp, capeff, capeff);
    printf("daemon %d serves uid %u with Uid all %u, CapEff %llx, NoNewPrivs %llu\n", (int)d, (unsigned)getuid(),
           (unsigned)getuid(), eff, nnp);
    HPMfinalize();
    CHECK(report_children("after HPMfinalize") == 0, "processes left after HPMfinalize");
    return test_result("user");
}

int main(int argc, char **argv)
{
    guard_alarm(120);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return 2;
    find_cpus();
    if (ncpus == 0) {
        fprintf(stderr, "no /dev/cpu/N/msr (msr driver not loaded?)\n");
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "refused") == 0 && argc == 3) {
        HPMinit();
        int rc = HPMaddThread(0);
        CHECK_RC(rc, -atoi(argv[2]), "HPMaddThread(0) by uid %u", (unsigned)getuid());
        /* The library does not print: the reason is the caller's to show. */
        char why[512];
        HPMlastError(why, sizeof why);
        fprintf(stderr, "%s\n", why);
        HPMfinalize();
        return test_result("refused");
    }
    if (strcmp(cmd, "open-denied") == 0 && argc == 4) {
        int fd = open(argv[2], O_RDONLY);
        int err = errno;
        CHECK(fd < 0 && err == atoi(argv[3]), "uid %u open(%s): %s, want %s", (unsigned)getuid(), argv[2],
              fd < 0 ? strerror(err) : "opened", strerror(atoi(argv[3])));
        printf("uid %u: open(%s) fails: %s\n", (unsigned)getuid(), argv[2], fd < 0 ? strerror(err) : "opened");
        return test_result("open-denied");
    }
    if (strcmp(cmd, "expect") == 0 && argc == 4)
        return cmd_expect((uint32_t)strtoul(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
    if (strcmp(cmd, "user") == 0 && argc == 4)
        return cmd_user(argv[2], strtoull(argv[3], NULL, 16));
    if (argc < 3 || load_policy(argv[2]) != 0)
        return 2;
    if (strcmp(cmd, "reads") == 0)
        return cmd_reads();
    if (strcmp(cmd, "deny") == 0)
        return cmd_deny();
    if (strcmp(cmd, "batch") == 0)
        return cmd_batch();
    if (strcmp(cmd, "offline") == 0)
        return cmd_offline();
    if (strcmp(cmd, "dump") == 0 && argc == 4)
        return cmd_dump(argv[3]);
    fprintf(stderr, "vm_checks: unknown command %s\n", cmd);
    return 2;
}
