/*
 * The floor of a LIKWID tool's time in a daemon: a stand-in likwid-accessD that does only the
 * work a request needs and checks nothing (no policy, no lock file, no journal, no log), so
 * `make bench` can run likwid-perfctr's timeline through it beside ours and LIKWID's daemon and
 * say how much of an interval any daemon could save. NOT a daemon to install: it lets its
 * client read and write any MSR. bench.sh builds it into a scratch directory only.
 *
 * Speaks LIKWID 5's socket protocol (LIKWID src/access-daemon/accessDaemon.c, tag v5.5.1: the
 * record of src/includes/access_client_types.h, /tmp/likwid-<pid>, one client, EXIT = 3):
 * reads pread and writes pwrite /dev/cpu/N/msr (a register store file holds register R at
 * offset 8 * R, the kernel's device at offset R); CHECK answers whether that file opened;
 * PCI devices are answered NODEV (the bench's machines have none on this host's /sys).
 */
#define _XOPEN_SOURCE 700
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct record {
    uint32_t cpu, reg;
    uint64_t data;
    int32_t device, type, errorcode;
};

enum { READ, WRITE, CHECK, EXIT };
enum { NOERROR = 0, UNKNOWN = 1, OPENFAIL = 3, RWFAIL = 4, NODEV = 6 };
#define MAX_CPUS 1024

static int fds[MAX_CPUS];
static int stride[MAX_CPUS];

static int msr(uint32_t cpu)
{
    if (cpu >= MAX_CPUS)
        return -1;
    if (fds[cpu] == 0) {
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/dev/cpu/%u/msr", cpu);
        fds[cpu] = open(path, O_RDWR);
        stride[cpu] = (fds[cpu] >= 0 && fstat(fds[cpu], &st) == 0 && S_ISCHR(st.st_mode)) ? 1 : 8;
    }
    return fds[cpu];
}

static int answer(struct record *r)
{
    int fd = r->device == 0 ? msr(r->cpu) : -1;
    off_t at = fd >= 0 ? (off_t)r->reg * stride[r->cpu] : 0;
    uint64_t v = r->data;
    r->data = 0;
    if (r->device != 0)
        return NODEV;
    if (fd < 0)
        return OPENFAIL;
    switch (r->type) {
    case READ:
        if (pread(fd, &r->data, 8, at) != 8)
            return RWFAIL;
        return NOERROR;
    case WRITE:
        return pwrite(fd, &v, 8, at) == 8 ? NOERROR : RWFAIL;
    case CHECK:
        return NOERROR;
    default:
        return UNKNOWN;
    }
}

int main(void)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof addr.sun_path, "/tmp/likwid-%d", (int)getpid());
    umask(077);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 1) != 0)
        return 1;
    alarm(15);
    int c = accept(s, NULL, NULL);
    unlink(addr.sun_path);
    alarm(0);
    if (c < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    struct record r;
    for (;;) {
        size_t got = 0;
        while (got < sizeof r) {
            ssize_t n = read(c, (char *)&r + got, sizeof r - got);
            if (n <= 0)
                return 0;
            got += (size_t)n;
        }
        if (r.type == EXIT)
            return 0;
        r.errorcode = answer(&r);
        if (write(c, &r, sizeof r) != sizeof r)
            return 0;
    }
}
