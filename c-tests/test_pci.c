/*
 * test_pci: PCI uncore through the auto-launched daemon on a simulated two-socket Intel server
 * (Skylake-SP here; test_pci_icx.c builds this for Icelake-SP). On each socket it programs and
 * reads a memory-controller counter (SKX: config space; ICX: its memory-mapped window in
 * /dev/mem) and a UPI counter, checks the bytes in the simulated files, the write masks and the
 * offsets outside a counter block; HPMcheck reports exactly the devices the tree has; the
 * ordinary PCI device in the tree is never served.
 */
#include "check.h"

#ifdef PCI_TEST_ICX
#define GEN "icx"
#define UPI_CTL 0x350u
#define UPI_CTR 0x320u
#define UPI_DEVFN "02.1"
#else
#define GEN "skx"
#define IMC_CTL 0xD8u
#define IMC_CTR 0xA0u
#define UPI_CTL 0x350u
#define UPI_CTR 0x318u
#define UPI_DEVFN "0e.0"
#endif
#define CPUS 4u /* cpus 0,1 on socket 0; 2,3 on socket 1 */

/* The simulated config file of a device: first bus of the socket is 0x10 + 0x80 * socket. */
static int config_file(unsigned socket, const char *devfn, char *path, size_t len)
{
    snprintf(path, len, "%s/sys/bus/pci/devices/0000:%02x:%s/config", sim_root(), 0x10 + 0x80 * socket, devfn);
    return access(path, F_OK);
}

static uint64_t config_read(unsigned socket, const char *devfn, uint32_t off, int width)
{
    char path[512];
    uint64_t v = 0;
    config_file(socket, devfn, path, sizeof path);
    int fd = open(path, O_RDONLY);
    if (fd < 0 || pread(fd, &v, (size_t)width, off) != width)
        v = ~UINT64_C(0);
    if (fd >= 0)
        close(fd);
    return v;
}

#ifdef PCI_TEST_ICX
/* The simulator places socket s's controller c at ((s + 1) << 23) | ((c + 1) << 12). */
static uint64_t mem_read(unsigned socket, unsigned channel, uint32_t off, int width)
{
    char path[512];
    uint64_t v = 0, block = ((uint64_t)(socket + 1) << 23) | ((uint64_t)(channel / 2 + 1) << 12);
    snprintf(path, sizeof path, "%s/dev/mem", sim_root());
    int fd = open(path, O_RDONLY);
    if (fd < 0 || pread(fd, &v, (size_t)width, (off_t)(block + 0x22800 + 0x4000 * (channel % 2) + off)) != width)
        v = ~UINT64_C(0);
    if (fd >= 0)
        close(fd);
    return v;
}

static void mmio_channel(uint32_t cpu, PciDeviceIndex dev, unsigned channel)
{
    unsigned socket = cpu / 2;
    uint64_t v = 0, counter = UINT64_C(0xABCDEF0123) + socket;
    CHECK(HPMcheck(dev, cpu) == 1, "MMIO channel %u: HPMcheck on cpu %u", channel, (unsigned)cpu);
    CHECK_RC(HPMwrite(cpu, dev, 0x40, 0x00400304), 0, "MMIO channel %u: program CTL0", channel);
    CHECK_U64(mem_read(socket, channel, 0x40, 4), 0x00400304, "MMIO channel %u: CTL0 bytes on socket %u", channel, socket);
    CHECK_RC(HPMwrite(cpu, dev, 0x08, counter), 0, "MMIO channel %u: write CTR0", channel);
    CHECK_RC(HPMread(cpu, dev, 0x08, &v), 0, "MMIO channel %u: read CTR0", channel);
    CHECK_U64(v, counter, "MMIO channel %u: CTR0 on socket %u", channel, socket);
    CHECK_U64(mem_read(socket, channel, 0x08, 8), counter, "MMIO channel %u: CTR0 bytes on socket %u", channel, socket);
    CHECK_RC(HPMwrite(cpu, dev, 0x100, 1), -EPERM, "MMIO channel %u: offset outside the counter block", channel);
    CHECK_RC(HPMwrite(cpu, MMIO_IMC_DEVICE_0_FREERUN, 0x00, 1), -EPERM, "free-running counters are read-only");
    CHECK_RC(HPMread(cpu, MMIO_IMC_DEVICE_0_FREERUN, 0x00, &v), 0, "free-running counter read");
}
#endif

static void program_and_read(uint32_t cpu, PciDeviceIndex dev, const char *devfn, uint32_t ctl, int ctl_width,
                             uint64_t ctl_value, uint32_t ctr, const char *what)
{
    unsigned socket = cpu / 2;
    CHECK(HPMcheck(dev, cpu) == 1, "%s: HPMcheck on cpu %u", what, (unsigned)cpu);
    CHECK_RC(HPMwrite(cpu, dev, ctl, ctl_value), 0, "%s: program control on cpu %u", what, (unsigned)cpu);
    CHECK_U64(config_read(socket, devfn, ctl, ctl_width), ctl_value, "%s: control bytes on socket %u", what, socket);
    uint64_t counter = UINT64_C(0x123456789A) + socket;
    CHECK_RC(HPMwrite(cpu, dev, ctr, counter), 0, "%s: write counter", what);
    uint64_t v = 0;
    CHECK_RC(HPMread(cpu, dev, ctr, &v), 0, "%s: read counter", what);
    CHECK_U64(v, counter, "%s: counter on socket %u", what, socket);
    CHECK_U64(config_read(socket, devfn, ctr, 8), counter, "%s: counter bytes on socket %u", what, socket);
    /* The counter block ends; config space goes on: an offset beyond it is refused. */
    CHECK_RC(HPMread(cpu, dev, 0x10, &v), -EPERM, "%s: BAR offset 0x10", what);
    CHECK_RC(HPMwrite(cpu, dev, 0x4, 0xFFFF), -EPERM, "%s: command register", what);
    CHECK_RC(HPMread(cpu, dev, ctr + 1, &v), -EPERM, "%s: misaligned counter offset", what);
}

int main(void)
{
    guard_alarm(60);
    start_session(CPUS);
    for (uint32_t cpu = 0; cpu < CPUS; cpu += 2) {
#ifdef PCI_TEST_ICX
        mmio_channel(cpu, MMIO_IMC_DEVICE_0_CH_0, 0);
        mmio_channel(cpu, MMIO_IMC_DEVICE_3_CH_1, 7);
#else
        program_and_read(cpu, PCI_IMC_DEVICE_0_CH_0, "0a.2", IMC_CTL, 4, 0x00400304, IMC_CTR, "IMC channel 0");
        /* ov_en (bit 20) is outside what LIKWID writes here: masked out, the rest kept. */
        HPMwrite(cpu, PCI_IMC_DEVICE_0_CH_1, IMC_CTL, 0xFFFFFFFF);
        CHECK_U64(config_read(cpu / 2, "0a.6", IMC_CTL, 4), 0xFFD4FFFF & 0xFFFFFFFF, "IMC mask keeps reserved bits");
#endif
        program_and_read(cpu, PCI_QPI_DEVICE_PORT_0, UPI_DEVFN, UPI_CTL, 8, 0x00400102, UPI_CTR, "UPI link 0");
    }
    /* Devices the generation does not have are absent; indices outside the numbering are bad. */
    CHECK(HPMcheck(PCI_EDC0_UCLK_DEVICE, 0) == 0, "EDC does not exist on " GEN);
    CHECK(HPMcheck(PCI_R2PCIE_DEVICE, 0) == 0, "R2PCIE is not served on " GEN);
    uint64_t v = 0;
    CHECK_RC(HPMread(0, PCI_R2PCIE_DEVICE, 0xA0, &v), -ENODEV, "absent device");
    CHECK_RC(HPMread(0, 999, 0xA0, &v), -EFAULT, "index outside the numbering");
    CHECK_RC(HPMread(9, PCI_QPI_DEVICE_PORT_0, UPI_CTR, &v), -ERANGE, "cpu not on the machine");
    /* Batches carry PCI operations too. */
    HPMBatchOp ops[2] = {
        { .cpu = 3, .dev = PCI_QPI_DEVICE_PORT_0, .reg = UPI_CTR, .op = HPM_BATCH_WRITE, .data = 77 },
        { .cpu = 3, .dev = PCI_QPI_DEVICE_PORT_0, .reg = UPI_CTR, .op = HPM_BATCH_READ },
    };
    CHECK_RC(HPMbatch(ops, 2), 0, "PCI batch");
    CHECK_U64(ops[1].data, 77, "PCI batch read on socket 1");
    /* LIKWID 3's pci_read reaches the same device through the same session. */
    pci_init(-1);
    errno = 0;
    uint32_t low = pci_read(3, PCI_QPI_DEVICE_PORT_0, UPI_CTR);
    CHECK(errno == 0 && low == 77, "pci_read on socket 1: %u, errno %d", low, errno);
    pci_finalize();
    int present = 0;
    for (PciDeviceIndex d = 1; d < 55; d++)
        present += HPMcheck(d, 0) + HPMcheck(d, 2);
#ifdef PCI_TEST_ICX
    /* 10 in config space (M2M, UPI, M3UPI) + 8 memory channels + 4 free-running windows */
    CHECK(present == 2 * 22, "HPMcheck finds %d devices on two sockets, want 2 x 22", present);
#else
    CHECK(present == 2 * 14, "HPMcheck finds %d devices on two sockets, want 2 x 14", present);
#endif
    HPMfinalize();
    return test_result("test_pci");
}
