/*
 * test_startup_errors: the daemon cannot start.
 *   (a) LIKWID_ACCESSD=/nonexistent         -> HPMaddThread == -ENOENT
 *   (b) DIR/proc/cpuinfo claims an unknown CPU (AuthenticAMD family 20
 *       model 2)                             -> -ENOTSUP
 *   (c) DIR/dev/cpu is missing               -> -ENXIO
 * Each returns within 5 s, prints exactly one "likwid-access: " line to
 * stderr (LIKWID_ACCESS_VERBOSE=1; HPMlastError returns the same text) and
 * leaves no child process.  The tree is restored after each case
 * and a control session must work before and after.
 */
#include "check.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* Rewrite "cpu family" and "model" lines (not "model name"). */
static char *unknown_cpuinfo(const char *orig)
{
    size_t cap = strlen(orig) + 4096, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    const char *p = orig;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        char key[64] = "";
        if (colon) {
            size_t kl = (size_t)(colon - p);
            while (kl > 0 && (p[kl - 1] == ' ' || p[kl - 1] == '\t'))
                kl--;
            if (kl < sizeof key) {
                memcpy(key, p, kl);
                key[kl] = '\0';
            }
        }
        const char *repl = NULL;
        if (strcmp(key, "cpu family") == 0)
            repl = "cpu family\t: 20";
        else if (strcmp(key, "model") == 0)
            repl = "model\t\t: 2";
        else if (strcmp(key, "vendor_id") == 0)
            repl = "vendor_id\t: AuthenticAMD";
        if (n + len + 64 >= cap) {
            cap = cap * 2 + len + 64;
            char *no = realloc(out, cap);
            if (!no) {
                free(out);
                return NULL;
            }
            out = no;
        }
        if (repl) {
            memcpy(out + n, repl, strlen(repl));
            n += strlen(repl);
        } else {
            memcpy(out + n, p, len);
            n += len;
        }
        if (nl)
            out[n++] = '\n';
        p = nl ? nl + 1 : p + len;
    }
    out[n] = '\0';
    return out;
}

static void expect_start_failure(const char *what, int expected)
{
    CHECK_RC(HPMinit(), 0, "%s: HPMinit", what);
    struct capture cap;
    int capturing = capture_begin(&cap) == 0;
    double t0 = now_ms();
    int rc = HPMaddThread(0);
    double dt = now_ms() - t0;
    if (capturing) {
        char buf[8192];
        capture_end(&cap, buf, sizeof buf);
        echo_captured(what, buf);
        CHECK_ONE_LIB_LINE(buf, "%s", what);
        /* The line is the message HPMlastError keeps. */
        char msg[4096];
        CHECK(HPMlastError(msg, sizeof msg) > 0 && strstr(buf, msg) != NULL,
              "%s: HPMlastError '%s' is not what was printed", what, msg);
    }
    CHECK_RC(rc, expected, "%s: HPMaddThread(0)", what);
    CHECK(dt < 5000.0, "%s: HPMaddThread took %.0f ms", what, dt);
    CHECK_NO_CHILDREN("%s: after the failed HPMaddThread", what);
    if (rc != 0) {
        uint64_t v = 0;
        int r2 = HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v);
        CHECK(r2 < 0, "%s: HPMread after the failed start returned %s", what, rc_name(r2));
    }
    t0 = now_ms();
    HPMfinalize();
    dt = now_ms() - t0;
    CHECK(dt < 5000.0, "%s: HPMfinalize took %.0f ms", what, dt);
    CHECK_NO_CHILDREN("%s: after HPMfinalize", what);
}

static void control(const char *what)
{
    CHECK_RC(HPMinit(), 0, "%s: HPMinit", what);
    int rc = HPMaddThread(0);
    CHECK_RC(rc, 0, "%s: HPMaddThread(0)", what);
    if (rc == 0) {
        uint64_t v = 1;
        CHECK_RC(HPMread(0, MSR_DEV, REG_PERF_CTR(0), &v), 0, "%s: HPMread", what);
    }
    HPMfinalize();
    CHECK_NO_CHILDREN("%s: after HPMfinalize", what);
}

int main(void)
{
    guard_alarm(60);
    /* The library prints its "likwid-access: " line only when asked to. */
    setenv("LIKWID_ACCESS_VERBOSE", "1", 1);
    const char *root = sim_root();
    const char *daemon_env = getenv("LIKWID_ACCESSD");
    char *daemon = daemon_env ? strdup(daemon_env) : NULL;

    control("control before");

    /* (a) daemon binary missing */
    setenv("LIKWID_ACCESSD", "/nonexistent/likwid-accessD", 1);
    expect_start_failure("(a) LIKWID_ACCESSD=/nonexistent", -ENOENT);
    if (daemon)
        setenv("LIKWID_ACCESSD", daemon, 1);
    else
        unsetenv("LIKWID_ACCESSD");

    /* (b) unknown CPU */
    char cpuinfo[4096];
    snprintf(cpuinfo, sizeof cpuinfo, "%s/proc/cpuinfo", root);
    size_t len = 0;
    char *orig = read_file(cpuinfo, &len);
    CHECK(orig != NULL, "cannot read %s: %s", cpuinfo, strerror(errno));
    if (orig) {
        char *mod = unknown_cpuinfo(orig);
        CHECK(mod && strstr(mod, "cpu family\t: 20") != NULL,
              "could not rewrite 'cpu family' in %s", cpuinfo);
        if (mod && write_file(cpuinfo, mod, strlen(mod)) == 0) {
            expect_start_failure("(b) unknown CPU family 20 model 2", -ENOTSUP);
        } else {
            CHECK(0, "cannot write %s", cpuinfo);
        }
        CHECK(write_file(cpuinfo, orig, len) == 0, "cannot restore %s", cpuinfo);
        free(mod);
        free(orig);
    }

    /* (c) no msr device files */
    char devcpu[4096], hidden[4200];
    snprintf(devcpu, sizeof devcpu, "%s/dev/cpu", root);
    snprintf(hidden, sizeof hidden, "%s/dev/cpu.hidden-by-test", root);
    int moved = rename(devcpu, hidden) == 0;
    CHECK(moved, "cannot move %s away: %s", devcpu, strerror(errno));
    if (moved) {
        expect_start_failure("(c) no DIR/dev/cpu", -ENXIO);
        CHECK(rename(hidden, devcpu) == 0, "cannot restore %s: %s", devcpu, strerror(errno));
    }

    control("control after");
    free(daemon);
    return test_result("test_startup_errors");
}
