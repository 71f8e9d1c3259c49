/*
 * test_finalize_clean: 3 cycles of HPMinit / HPMaddThread(all) / ops /
 * HPMfinalize.  After each cycle: no child process of ours (running or
 * zombie), no /tmp/likwid-<pid> socket (nor DIR/tmp/likwid-<pid>) for a pid we
 * spawned, no leaked file descriptor; HPMinitialized() is 1 between init
 * and finalize and 0 outside.
 */
#include "check.h"

#define CYCLES 3
#define MAX_SPAWNED 256

static pid_t spawned[MAX_SPAWNED];
static int nspawned;

static void remember_children(void)
{
    struct child_info ci[64];
    int n = list_children(ci, 64);
    for (int i = 0; i < n && i < 64; i++) {
        int known = 0;
        for (int j = 0; j < nspawned; j++)
            known |= spawned[j] == ci[i].pid;
        if (!known && nspawned < MAX_SPAWNED)
            spawned[nspawned++] = ci[i].pid;
    }
}

/* any DIR/likwid-<pid> entry whose pid we spawned */
static void check_sockets(const char *dir, int cycle)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "likwid-", 7) != 0)
            continue;
        const char *num = de->d_name + 7;
        if (!*num || strspn(num, "0123456789") != strlen(num))
            continue;
        pid_t p = (pid_t)atoi(num);
        for (int j = 0; j < nspawned; j++)
            CHECK(spawned[j] != p, "cycle %d: %s/%s (socket of spawned pid %d) still exists", cycle,
                  dir, de->d_name, (int)p);
    }
    closedir(d);
}

int main(void)
{
    guard_alarm(60);
    char rootdir[4096];
    snprintf(rootdir, sizeof rootdir, "%s/tmp", sim_root());

    CHECK(HPMinitialized() == 0, "HPMinitialized() = %d before any HPMinit", HPMinitialized());
    CHECK_NO_CHILDREN("before the first cycle");
    int fds0 = count_fds();

    for (int cycle = 1; cycle <= CYCLES; cycle++) {
        CHECK_RC(HPMinit(), 0, "cycle %d: HPMinit", cycle);
        CHECK(HPMinitialized() == 1, "cycle %d: HPMinitialized() = %d after HPMinit", cycle, HPMinitialized());
        for (uint32_t c = 0; c < SIM_NCPUS; c++)
            CHECK_RC(HPMaddThread(c), 0, "cycle %d: HPMaddThread(%u)", cycle, (unsigned)c);
        remember_children();
        CHECK(find_daemon() > 0, "cycle %d: no likwid-accessD child while the session is open", cycle);
        CHECK(HPMinitialized() == 1, "cycle %d: HPMinitialized() = %d after HPMaddThread", cycle,
              HPMinitialized());

        for (uint32_t c = 0; c < SIM_NCPUS; c++) {
            uint64_t val = ((uint64_t)cycle << 32) | (uint64_t)c, v = 0;
            CHECK_RC(HPMwrite(c, MSR_DEV, REG_PERF_CTR(4), val), 0, "cycle %d: write cpu %u", cycle, (unsigned)c);
            CHECK_RC(HPMread(c, MSR_DEV, REG_PERF_CTR(4), &v), 0, "cycle %d: read cpu %u", cycle, (unsigned)c);
            CHECK_U64(v, val, "cycle %d: readback cpu %u", cycle, (unsigned)c);
            CHECK_RC(HPMread(c, MSR_DEV, REG_TSC, &v), 0, "cycle %d: TSC read cpu %u", cycle, (unsigned)c);
        }
        remember_children();

        double t0 = now_ms();
        HPMfinalize();
        double dt = now_ms() - t0;
        CHECK(dt < 5000.0, "cycle %d: HPMfinalize took %.0f ms", cycle, dt);
        CHECK(HPMinitialized() == 0, "cycle %d: HPMinitialized() = %d after HPMfinalize", cycle,
              HPMinitialized());
        CHECK_NO_CHILDREN("cycle %d: after HPMfinalize", cycle);
        check_sockets("/tmp", cycle);
        check_sockets(rootdir, cycle);
        int fds = count_fds();
        CHECK(fds == fds0, "cycle %d: %d open file descriptors after HPMfinalize, %d before the first cycle",
              cycle, fds, fds0);
    }

    /* finalize twice is harmless */
    HPMfinalize();
    CHECK(HPMinitialized() == 0, "HPMinitialized() = %d after a second HPMfinalize", HPMinitialized());
    CHECK_NO_CHILDREN("after a second HPMfinalize");
    printf("spawned %d process(es) over %d cycles\n", nspawned, CYCLES);
    return test_result("test_finalize_clean");
}
