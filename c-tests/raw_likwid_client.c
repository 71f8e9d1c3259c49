/* A LIKWID 5 client written from the protocol facts, not from our library: it starts the
 * daemon exactly as liblikwid does (no arguments, empty environment), connects to
 * /tmp/likwid-<pid>, and checks the daemon's replies to legal and hostile records.
 * usage: raw_likwid_client DAEMON   (run as root inside `unshare -m`, see compat.sh) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    uint32_t cpu;
    uint32_t reg;
    uint64_t data;
    int32_t device;
    int32_t type;
    int32_t errorcode;
} AccessDataRecord;

enum { READ = 0, WRITE = 1, CHECK = 2, EXIT_ = 3 };
enum { NOERROR = 0, UNKNOWN = 1, RESTREG = 2, NODEV = 6 };

static int failures;
#define EXPECT(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

static AccessDataRecord ask(int fd, uint32_t cpu, int32_t dev, uint32_t reg, int32_t type, uint64_t data)
{
    AccessDataRecord r = { cpu, reg, data, dev, type, 3 /* LIKWID presets OPENFAIL */ };
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r) { perror("write"); exit(2); }
    if (read(fd, &r, sizeof r) != (ssize_t)sizeof r) { perror("read"); exit(2); }
    return r;
}

static uint64_t file_register(int cpu, uint32_t reg)
{
    char path[64];
    uint64_t v = 0;
    snprintf(path, sizeof path, "/dev/cpu/%d/msr", cpu);
    int fd = open(path, O_RDONLY);
    if (fd < 0 || pread(fd, &v, 8, (off_t)reg * 8) != 8) { perror(path); exit(2); }
    close(fd);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: %s DAEMON\n", argv[0]); return 2; }
    alarm(60);
    pid_t pid = fork();
    if (pid == 0) {
        char *none[] = { NULL };
        execve(argv[1], none, none);
        _exit(127);
    }
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof addr.sun_path, "/tmp/likwid-%d", (int)pid);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct stat st;
    int tries = 0, connected = -1;
    struct timespec pause = { 0, 2500000 };
    for (; tries < 1000 && connected != 0; tries++) {
        nanosleep(&pause, NULL);
        if (stat(addr.sun_path, &st) == 0) {
            EXPECT((st.st_mode & 0777) == 0600, "socket mode %o, want 600", (unsigned)(st.st_mode & 0777));
            EXPECT(st.st_uid == getuid(), "socket owner %u, want %u", (unsigned)st.st_uid, (unsigned)getuid());
            connected = connect(fd, (struct sockaddr *)&addr, sizeof addr);
        }
    }
    if (connected != 0) { printf("FAIL: no connection to %s after %d tries\n", addr.sun_path, tries); return 1; }
    nanosleep(&pause, NULL);
    EXPECT(access(addr.sun_path, F_OK) != 0, "%s still exists after accept", addr.sun_path);

    const uint32_t CTR0 = 0xC0010201, CTL0 = 0xC0010200, SYSCFG = 0xC0010010, EFER = 0xC0000080;
    AccessDataRecord r = ask(fd, 1, 0, CTR0, WRITE, 0x123456789abULL);
    EXPECT(r.errorcode == NOERROR && r.data == 0, "write CTR0: code %d data %" PRIx64, r.errorcode, r.data);
    r = ask(fd, 1, 0, CTR0, READ, 0);
    EXPECT(r.errorcode == NOERROR && r.data == 0x123456789abULL, "read CTR0: code %d data %" PRIx64, r.errorcode, r.data);
    EXPECT(file_register(1, CTR0) == 0x123456789abULL, "CTR0 in file: %" PRIx64, file_register(1, CTR0));
    EXPECT(file_register(1, CTL0) == 0, "CTL0 touched: %" PRIx64, file_register(1, CTL0));
    r = ask(fd, 0, 0, 0, CHECK, 0);
    EXPECT(r.errorcode == NOERROR, "CHECK cpu 0: code %d", r.errorcode);
    r = ask(fd, 0, 0, SYSCFG, WRITE, ~0ULL);
    EXPECT(r.errorcode == RESTREG, "SYSCFG write: code %d", r.errorcode);
    EXPECT(file_register(0, SYSCFG) == 0, "SYSCFG in file: %" PRIx64, file_register(0, SYSCFG));
    r = ask(fd, 0, 0, EFER, READ, 0);
    EXPECT(r.errorcode == RESTREG, "EFER read: code %d", r.errorcode);
    /* Hostile indices: Debian's 5.2.2 daemon dies on the first and answers the others NOERROR. */
    r = ask(fd, 0xFFFFFFFFu, 0, CTR0, READ, 0);
    EXPECT(r.errorcode == NODEV, "cpu 0xFFFFFFFF: code %d", r.errorcode);
    r = ask(fd, 2, 0, CTR0, WRITE, 1);
    EXPECT(r.errorcode == NODEV, "cpu 2 of 2: code %d", r.errorcode);
    r = ask(fd, 0, -5, CTR0, READ, 0);
    EXPECT(r.errorcode == NODEV, "device -5: code %d", r.errorcode);
    r = ask(fd, 0, 100000, CTR0, READ, 0);
    EXPECT(r.errorcode == NODEV, "device 100000: code %d", r.errorcode);
    r = ask(fd, 0, 0, CTR0, 77, 0);
    EXPECT(r.errorcode == UNKNOWN, "type 77: code %d", r.errorcode);
    r = ask(fd, 1, 0, CTR0, READ, 0);
    EXPECT(r.errorcode == NOERROR && r.data == 0x123456789abULL, "still serving after hostile records: code %d", r.errorcode);

    AccessDataRecord bye = { 0, 0, 0, 0, EXIT_, 3 };
    EXPECT(write(fd, &bye, sizeof bye) == (ssize_t)sizeof bye, "EXIT not sent");
    close(fd);
    int status = 0;
    EXPECT(waitpid(pid, &status, 0) == pid, "waitpid");
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "daemon exit status %d", status);
    EXPECT(file_register(1, CTR0) == 0x123456789abULL, "EXIT kept the counter: %" PRIx64, file_register(1, CTR0));
    printf("%s: %d failures\n", argv[0], failures);
    return failures ? 1 : 0;
}
