/* make demo: a C program that knows only include/likwid_access.h. It programs a core counter
 * on every CPU of the (simulated) machine through the auto-launched likwid-accessD, reads it
 * back, and shows what the policy refuses. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "likwid_access.h"

#define PERF_CTL0 0xC0010200u /* AMD core event select 0 */
#define PERF_CTR0 0xC0010201u /* AMD core counter 0 */
#define HWCR 0xC0010015u      /* only bit 30 (IRPerfEn) is writable */
#define SYSCFG 0xC0010010u    /* never writable */

int main(void)
{
    uint64_t value = 0;
    int cpus = 0;
    if (HPMinit() != 0)
        return 1;
    for (uint32_t cpu = 0; cpu < 1024; cpu++) {
        int rc = HPMaddThread(cpu);
        if (rc == -ERANGE)
            continue;
        if (rc != 0) {
            printf("HPMaddThread(%u) failed: %s\n", cpu, strerror(-rc));
            return 1;
        }
        cpus++;
        HPMwrite(cpu, MSR_DEV, PERF_CTL0, 0x430076); /* cycles, user+kernel, enabled */
        HPMwrite(cpu, MSR_DEV, PERF_CTR0, 1000 + cpu);
        int r1 = HPMread(cpu, MSR_DEV, PERF_CTR0, &value);
        printf("cpu %u: wrote PERF_CTR0 = %u, read back %" PRIu64 " (rc %d)\n", cpu, 1000 + cpu, value, r1);
    }
    printf("%d CPUs served by one likwid-accessD\n", cpus);
    HPMwrite(0, MSR_DEV, HWCR, ~0ULL);
    HPMread(0, MSR_DEV, HWCR, &value);
    printf("HWCR after writing all ones: %#" PRIx64 " (only IRPerfEn may change)\n", value);
    int rc = HPMwrite(0, MSR_DEV, SYSCFG, 1);
    printf("write to SYSCFG: %d (%s)\n", rc, rc == -EPERM ? "-EPERM, denied by policy" : "UNEXPECTED");
    HPMfinalize();
    return rc == -EPERM ? 0 : 1;
}
