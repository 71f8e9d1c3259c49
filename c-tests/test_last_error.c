/*
 * test_last_error: the library keeps why a call failed for HPMlastError and
 * writes nothing to the application's stderr unless LIKWID_ACCESS_VERBOSE=1.
 *   - before any failure HPMlastError returns 0 and writes an empty string
 *   - HPMread on cpu 99 (-ERANGE), HPMwrite to SYSCFG (-EPERM), HPMmode(7),
 *     HPMbatch of HPM_BATCH_MAX+1 (-E2BIG): each leaves its own message, and
 *     none of them prints a "likwid-access: " line
 *   - a short buffer gets the message's first len-1 bytes and a NUL; the
 *     return value is the full length (also with NULL, 0)
 *   - a successful call leaves the message as it was (as errno)
 *   - the message is per thread: a new thread has none, and its failure does
 *     not change the main thread's
 *   - with LIKWID_ACCESS_VERBOSE=1 a failure prints exactly one
 *     "likwid-access: " line, the same text HPMlastError returns
 */
#include "check.h"
#include <pthread.h>

static char thread_msg[512];
static size_t thread_before;

static void *other_thread(void *arg)
{
    (void)arg;
    thread_before = HPMlastError(NULL, 0);
    uint64_t v = 0;
    HPMread(0, 999, REG_PERF_CTR(0), &v); /* -EFAULT: bad device */
    HPMlastError(thread_msg, sizeof thread_msg);
    return NULL;
}

/* Runs HPMread(99, ...) with stderr captured; returns the number of library lines. */
static int lib_lines_of_failing_read(char *text, size_t len)
{
    struct capture cap;
    if (capture_begin(&cap) != 0)
        return -1;
    uint64_t v = 0;
    int rc = HPMread(99, MSR_DEV, REG_PERF_CTR(0), &v);
    capture_end(&cap, text, len);
    CHECK_RC(rc, -ERANGE, "HPMread cpu 99");
    return count_prefixed_lines(text, LIB_PREFIX);
}

int main(void)
{
    guard_alarm(60);
    unsetenv("LIKWID_ACCESS_VERBOSE");
    char msg[512], first[512], text[4096];

    strcpy(msg, "untouched");
    CHECK(HPMlastError(msg, sizeof msg) == 0 && msg[0] == '\0',
          "before any failure: HPMlastError wrote '%s'", msg);

    if (start_session(2) != 0) {
        HPMfinalize();
        return test_result("test_last_error");
    }

    /* Each failure keeps its own message; nothing reaches stderr. */
    int n = lib_lines_of_failing_read(text, sizeof text);
    CHECK(n == 0, "without LIKWID_ACCESS_VERBOSE the library printed %d line(s): %s", n, text);
    size_t full = HPMlastError(msg, sizeof msg);
    CHECK(full == strlen(msg) && strstr(msg, "not on this machine") != NULL,
          "after HPMread cpu 99: '%s' (length %zu)", msg, full);

    struct capture cap;
    int capturing = capture_begin(&cap) == 0;
    CHECK_RC(HPMwrite(0, MSR_DEV, REG_SYSCFG, 1), -EPERM, "HPMwrite SYSCFG");
    HPMlastError(msg, sizeof msg);
    CHECK(strstr(msg, "0xc0010010") && strstr(msg, "denied"), "after the denied write: '%s'", msg);

    HPMmode(7);
    HPMlastError(msg, sizeof msg);
    CHECK(strstr(msg, "HPMmode(7)") != NULL, "after HPMmode(7): '%s'", msg);

    HPMBatchOp op = { .cpu = 0, .dev = MSR_DEV, .reg = REG_PERF_CTR(0), .op = HPM_BATCH_READ };
    HPMBatchOp *ops = calloc(HPM_BATCH_MAX + 1u, sizeof *ops);
    CHECK(ops != NULL, "calloc");
    if (ops) {
        for (uint32_t i = 0; i <= HPM_BATCH_MAX; i++)
            ops[i] = op;
        CHECK_RC(HPMbatch(ops, HPM_BATCH_MAX + 1u), -E2BIG, "HPMbatch of HPM_BATCH_MAX+1");
        free(ops);
        HPMlastError(msg, sizeof msg);
        CHECK(strstr(msg, "65537") != NULL, "after the oversized batch: '%s'", msg);
    }
    if (capturing) {
        capture_end(&cap, text, sizeof text);
        n = count_prefixed_lines(text, LIB_PREFIX);
        CHECK(n == 0, "without LIKWID_ACCESS_VERBOSE the library printed %d line(s): %s", n, text);
    }

    /* Truncation: the first len-1 bytes and a NUL; the result is the full length. */
    full = HPMlastError(first, sizeof first);
    CHECK(full > 8 && full == strlen(first), "full message '%s' length %zu", first, full);
    char small[6];
    memset(small, 'X', sizeof small);
    size_t got = HPMlastError(small, sizeof small);
    CHECK(got == full, "short buffer: returned %zu, full length %zu", got, full);
    CHECK(strlen(small) == sizeof small - 1 && strncmp(small, first, sizeof small - 1) == 0,
          "short buffer holds '%s', want the first %zu bytes of '%s'", small, sizeof small - 1, first);
    CHECK(HPMlastError(NULL, 0) == full, "HPMlastError(NULL, 0) = %zu, want %zu", HPMlastError(NULL, 0), full);
    char one = 'X';
    CHECK(HPMlastError(&one, 1) == full && one == '\0', "a one-byte buffer gets only the NUL");

    /* Success does not clear it. */
    uint64_t v = 0;
    CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v), 0, "HPMread cpu 0");
    HPMlastError(msg, sizeof msg);
    CHECK(strcmp(msg, first) == 0, "after a successful read: '%s', want '%s'", msg, first);

    /* Per thread. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    CHECK(thread_before == 0, "a new thread starts with a message of length %zu", thread_before);
    CHECK(strstr(thread_msg, "device") != NULL, "the thread's own failure: '%s'", thread_msg);
    HPMlastError(msg, sizeof msg);
    CHECK(strcmp(msg, first) == 0, "the thread's failure changed the main thread's message to '%s'", msg);

    /* The opt-in echo: one line, the getter's text. */
    setenv("LIKWID_ACCESS_VERBOSE", "1", 1);
    n = lib_lines_of_failing_read(text, sizeof text);
    echo_captured("LIKWID_ACCESS_VERBOSE=1", text);
    CHECK(n == 1, "with LIKWID_ACCESS_VERBOSE=1: %d library line(s), want 1", n);
    HPMlastError(msg, sizeof msg);
    char line[600];
    snprintf(line, sizeof line, LIB_PREFIX "%s\n", msg);
    CHECK(strcmp(text, line) == 0, "echoed '%s', want '%s'", text, line);
    unsetenv("LIKWID_ACCESS_VERBOSE");

    HPMfinalize();
    CHECK_NO_CHILDREN("after HPMfinalize");
    return test_result("test_last_error");
}
