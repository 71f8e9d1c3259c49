/* soak: millions of requests through one daemon; the daemon's private memory
 * (Private_Clean + Private_Dirty in /proc/PID/smaps_rollup) must stay flat.
 * usage: soak MILLIONS   (LIKWID_ACCESS_ROOT: a simulated zen4 with 8 CPUs)
 * Each round: 1000 single requests (write+read pairs, checked) and one batch of 9000
 * (writes and reads of 6 counters on 8 CPUs, checked, plus denied reads for the audit path).
 * A sample per million requests. glibc hands the batch buffers back or keeps them as it sees
 * fit, so samples swing by their size: the peak of the second half must not exceed the peak of
 * the first by more than 64 KiB (exit 1 otherwise, or when a value was wrong). */
#include "../c-tests/check.h"

#define BATCH 9000

static long private_kib(int pid)
{
    char path[64], line[256];
    long total = 0, kib;
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if ((sscanf(line, "Private_Clean: %ld kB", &kib) == 1) || (sscanf(line, "Private_Dirty: %ld kB", &kib) == 1))
            total += kib;
    if (f)
        fclose(f);
    return f ? total : -1;
}

int main(int argc, char **argv)
{
    long millions = argc > 1 ? atol(argv[1]) : 10, errors = 0, first = -1, last = -1, low = -1;
    static HPMBatchOp ops[BATCH];
    HPMmode(1);
    if (HPMinit() != 0)
        return 2;
    for (uint32_t c = 0; c < SIM_NCPUS; c++)
        if (HPMaddThread(c) != 0)
            return 2;
    int pid = HPMdaemonPid();
    double t0 = now_ms();
    uint64_t seq = 1;
    for (long round = 0; round < millions * 100; round++) {
        for (int i = 0; i < 500; i++, seq++) {
            uint32_t cpu = (uint32_t)(seq % SIM_NCPUS), reg = REG_PERF_CTR(seq % NUM_COUNTERS);
            uint64_t v = seq & CTR_MASK, got = 0;
            if (HPMwrite(cpu, MSR_DEV, reg, v) != 0 || HPMread(cpu, MSR_DEV, reg, &got) != 0 || got != v)
                errors++;
        }
        for (int i = 0; i < BATCH; i += 3, seq++) {
            uint32_t cpu = (uint32_t)(seq % SIM_NCPUS), reg = REG_PERF_CTR(seq % NUM_COUNTERS);
            ops[i] = (HPMBatchOp){ .cpu = cpu, .dev = MSR_DEV, .reg = reg, .op = HPM_BATCH_WRITE, .data = seq & CTR_MASK };
            ops[i + 1] = (HPMBatchOp){ .cpu = cpu, .dev = MSR_DEV, .reg = reg, .op = HPM_BATCH_READ };
            ops[i + 2] = (HPMBatchOp){ .cpu = cpu, .dev = MSR_DEV, .reg = REG_EFER, .op = HPM_BATCH_READ };
        }
        if (HPMbatch(ops, BATCH) != BATCH / 3) /* the number of failed operations: the EFER reads */
            errors++;
        for (int i = 0; i < BATCH; i += 3)
            if (ops[i].result || ops[i + 1].result || ops[i + 1].data != ops[i].data || ops[i + 2].result != -EPERM)
                errors++;
        if ((round + 1) % 100 == 0) {
            long kib = private_kib(pid), done = (round + 1) / 100;
            if (done <= (millions + 1) / 2)
                first = kib > first ? kib : first;
            else
                last = kib > last ? kib : last;
            low = low < 0 || kib < low ? kib : low;
            printf("%ld M requests, %.0f s: daemon private %ld KiB, errors %ld\n", done, (now_ms() - t0) / 1000, kib,
                   errors);
            fflush(stdout);
        }
    }
    HPMfinalize();
    if (millions < 2)
        last = first;
    printf("soak: %ld M requests; daemon private memory: lowest %ld KiB, peak %ld KiB in the first half, "
           "%ld KiB in the second (%+ld KiB); errors %ld\n", millions, low, first, last, last - first, errors);
    return errors || first < 0 || last - first > 64 ? 1 : 0;
}
