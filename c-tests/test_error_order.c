/*
 * test_error_order: with a bad device AND a bad cpu every API answers as
 * LIKWID's HPMread does (LIKWID 5.5.1 src/access.c: device >= the numbering
 * -> -EFAULT first, then cpu not on the machine -> -ERANGE, then cpu not
 * added -> -ENODEV): HPMread/HPMwrite (before and after the first
 * HPMaddThread), HPMbatch, and LIKWID 3's pci_* through the process-wide
 * session and through a session of its own (pci_tread reported ERANGE there).
 * Device 999 and -5 are outside the numbering, cpu 99 and -1 are not on the
 * 8-CPU machine, cpu 5 is on it but not added.
 */
#include "check.h"

#define BAD_DEV 999
#define PCI_DEV 5 /* PCI_IMC_DEVICE_0_CH_0: in the numbering, not on zen4 */

static void pci_order(int fd, const char *which)
{
    errno = 0;
    CHECK(pci_tread(fd, 99, BAD_DEV, 0x10) == 0 && errno == EFAULT,
          "%s: pci_tread(cpu 99, device 999): errno %d, want EFAULT", which, errno);
    errno = 0;
    CHECK(pci_tread(fd, -1, -5, 0x10) == 0 && errno == EFAULT,
          "%s: pci_tread(cpu -1, device -5): errno %d, want EFAULT", which, errno);
    errno = 0;
    pci_twrite(fd, 99, BAD_DEV, 0x10, 1);
    CHECK(errno == EFAULT, "%s: pci_twrite(cpu 99, device 999): errno %d, want EFAULT", which, errno);
    errno = 0;
    CHECK(pci_tread(fd, 99, PCI_DEV, 0x10) == 0 && errno == ERANGE,
          "%s: pci_tread(cpu 99, device %d): errno %d, want ERANGE", which, PCI_DEV, errno);
    errno = 0;
    CHECK(pci_tread(fd, -1, PCI_DEV, 0x10) == 0 && errno == ERANGE,
          "%s: pci_tread(cpu -1, device %d): errno %d, want ERANGE", which, PCI_DEV, errno);
}

int main(void)
{
    guard_alarm(60);
    uint64_t v = 0;

    /* Before anything started: the device is still checked first. */
    CHECK_RC(HPMread(99, BAD_DEV, REG_PERF_CTR(0), &v), -EFAULT, "HPMread(99, 999) before HPMaddThread");
    CHECK_RC(HPMread(99, MSR_DEV, REG_PERF_CTR(0), &v), -ENODEV, "HPMread(99, MSR_DEV) before HPMaddThread");

    if (start_session(2) != 0) {
        HPMfinalize();
        return test_result("test_error_order");
    }
    CHECK_RC(HPMread(99, BAD_DEV, REG_PERF_CTR(0), &v), -EFAULT, "HPMread(99, 999)");
    CHECK_RC(HPMwrite(99, BAD_DEV, REG_PERF_CTR(0), 1), -EFAULT, "HPMwrite(99, 999)");
    CHECK_RC(HPMread(0xFFFFFFFFu, -5, REG_PERF_CTR(0), &v), -EFAULT, "HPMread(0xFFFFFFFF, -5)");
    CHECK_RC(HPMread(5, BAD_DEV, REG_PERF_CTR(0), &v), -EFAULT, "HPMread(5 not added, 999)");
    CHECK_RC(HPMread(99, PCI_DEV, REG_PERF_CTR(0), &v), -ERANGE, "HPMread(99, PCI device)");
    CHECK_RC(HPMread(99, MSR_DEV, REG_PERF_CTR(0), &v), -ERANGE, "HPMread(99, MSR_DEV)");
    CHECK_RC(HPMread(5, MSR_DEV, REG_PERF_CTR(0), &v), -ENODEV, "HPMread(5 not added, MSR_DEV)");

    HPMBatchOp ops[4] = {
        { .cpu = 99, .dev = BAD_DEV, .reg = REG_PERF_CTR(0), .op = HPM_BATCH_READ },
        { .cpu = 99, .dev = MSR_DEV, .reg = REG_PERF_CTR(0), .op = HPM_BATCH_READ },
        { .cpu = 5, .dev = BAD_DEV, .reg = REG_PERF_CTR(0), .op = HPM_BATCH_WRITE, .data = 1 },
        { .cpu = 0, .dev = MSR_DEV, .reg = REG_PERF_CTR(0), .op = HPM_BATCH_READ },
    };
    CHECK_RC(HPMbatch(ops, 4), 3, "HPMbatch: failed operations");
    CHECK_RC(ops[0].result, -EFAULT, "HPMbatch op (99, 999)");
    CHECK_RC(ops[1].result, -ERANGE, "HPMbatch op (99, MSR_DEV)");
    CHECK_RC(ops[2].result, -EFAULT, "HPMbatch op (5 not added, 999)");
    CHECK_RC(ops[3].result, 0, "HPMbatch op (0, MSR_DEV)");

    /* LIKWID 3: the process-wide session (-1), then one of its own. */
    pci_order(-1, "process-wide session");
    int fd = -1;
    errno = 0;
    accessClient_init(&fd);
    CHECK(errno == 0 && fd >= 0, "accessClient_init: errno %d, fd %d", errno, fd);
    if (fd >= 0) {
        pci_order(fd, "own session");
        errno = 0;
        pci_init(fd);
        CHECK(pci_read(99, BAD_DEV, 0x10) == 0 && errno == EFAULT, "pci_read(99, 999): errno %d, want EFAULT",
              errno);
        pci_finalize();
        accessClient_finalize(fd);
    }
    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_error_order");
}
