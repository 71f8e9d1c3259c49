/* Run by an unprivileged user against a setuid-root or setcap copy of the daemon (see
 * privilege.sh). usage: priv_client session CAPEFF_HEX | crash | refused ERRNO */
#include "check.h"

#define CTR0 0xC0010201u

/* Reads "Key:\tA\tB\tC\tD" from /proc/PID/status into vals; returns how many were read. */
static int status_field(pid_t pid, const char *key, unsigned long long *vals, int max, int base)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        size_t klen = strlen(key);
        if (strncmp(line, key, klen) != 0 || line[klen] != ':')
            continue;
        char *p = line + klen + 1;
        while (n < max) {
            char *end;
            unsigned long long v = strtoull(p, &end, base);
            if (end == p)
                break;
            vals[n++] = v;
            p = end;
        }
    }
    fclose(f);
    return n;
}

static void check_daemon_identity(unsigned long long want_capeff)
{
    pid_t d = find_daemon();
    CHECK(d > 0, "no likwid-accessD child found");
    if (d <= 0)
        return;
    unsigned long long v[4];
    CHECK(status_field(d, "Uid", v, 4, 10) == 4 && v[0] == getuid() && v[1] == getuid() && v[2] == getuid() &&
              v[3] == getuid(),
          "daemon Uid %llu %llu %llu %llu, want all %u", v[0], v[1], v[2], v[3], (unsigned)getuid());
    CHECK(status_field(d, "Gid", v, 4, 10) == 4 && v[0] == getgid() && v[1] == getgid() && v[2] == getgid() &&
              v[3] == getgid(),
          "daemon Gid %llu %llu %llu %llu, want all %u", v[0], v[1], v[2], v[3], (unsigned)getgid());
    CHECK(status_field(d, "CapEff", v, 1, 16) == 1 && v[0] == want_capeff, "daemon CapEff %llx, want %llx", v[0],
          want_capeff);
    CHECK(status_field(d, "CapPrm", v, 1, 16) == 1 && v[0] == want_capeff, "daemon CapPrm %llx, want %llx", v[0],
          want_capeff);
    CHECK(status_field(d, "NoNewPrivs", v, 1, 10) == 1 && v[0] == 1, "daemon NoNewPrivs %llu, want 1", v[0]);
    printf("daemon %d: Uid and Gid all %u/%u, CapEff %llx, NoNewPrivs 1\n", (int)d, (unsigned)getuid(),
           (unsigned)getgid(), want_capeff);
}

int main(int argc, char **argv)
{
    guard_alarm(30);
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "refused") == 0 && argc == 3) {
        HPMinit();
        int rc = HPMaddThread(0);
        CHECK_RC(rc, -atoi(argv[2]), "HPMaddThread(0) against an impostor socket");
        HPMfinalize();
        return test_result("priv_client refused");
    }
    if (start_session(2) != 0)
        return test_result("priv_client");
    for (uint32_t c = 0; c < 2; c++) {
        CHECK_RC(HPMwrite(c, MSR_DEV, CTR0, 0x5550 + c), 0, "write PERF_CTR0 cpu %u", (unsigned)c);
        uint64_t v = 0;
        CHECK_RC(HPMread(c, MSR_DEV, CTR0, &v), 0, "read PERF_CTR0 cpu %u", (unsigned)c);
        CHECK_U64(v, (uint64_t)(0x5550 + c), "PERF_CTR0 cpu %u", (unsigned)c);
    }
    CHECK_RC(HPMwrite(0, MSR_DEV, REG_SYSCFG, 1), -EPERM, "SYSCFG write");
    if (strcmp(argv[1], "crash") == 0)
        raise(SIGKILL);
    if (strcmp(argv[1], "session") == 0 && argc == 3)
        check_daemon_identity(strtoull(argv[2], NULL, 16));
    HPMfinalize();
    return test_result("priv_client");
}
