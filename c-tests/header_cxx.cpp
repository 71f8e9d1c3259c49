// header_cxx.cpp: the public header must be usable from C++ (extern "C",
// no C-only constructs).  Compiled with g++ -std=c++17 -Wall -Wextra -Werror
// -pedantic and linked against liblikwid_access.so: taking the address of
// every function makes the link fail if the names were mangled.  Never run.
#include "likwid_access.h"
#include "likwid_access.h" // include guard

#include <cstdint>
#include <cstdio>

static_assert(sizeof(AccessMode) == 4, "AccessMode is int32_t");
static_assert(sizeof(PciDeviceIndex) == 4, "PciDeviceIndex is int32_t");
static_assert(ACCESSMODE_PERF == -1, "ACCESSMODE_PERF");
static_assert(ACCESSMODE_DIRECT == 0, "ACCESSMODE_DIRECT");
static_assert(ACCESSMODE_DAEMON == 1, "ACCESSMODE_DAEMON");
static_assert(MSR_DEV == 0, "MSR_DEV");

int main(int argc, char **)
{
    void (*mode)(int) = HPMmode;
    int (*init)(void) = HPMinit;
    int (*initialized)(void) = HPMinitialized;
    int (*add)(std::uint32_t) = HPMaddThread;
    void (*fin)(void) = HPMfinalize;
    int (*rd)(std::uint32_t, PciDeviceIndex, std::uint32_t, std::uint64_t *) = HPMread;
    int (*wr)(std::uint32_t, PciDeviceIndex, std::uint32_t, std::uint64_t) = HPMwrite;
    int (*chk)(PciDeviceIndex, std::uint32_t) = HPMcheck;
    if (argc > 100) { // never true; keeps the calls from being optimised away
        AccessMode m = ACCESSMODE_DAEMON;
        std::uint64_t v = 0;
        mode(m);
        (void)init();
        (void)initialized();
        (void)add(0);
        (void)rd(0, MSR_DEV, 0x10, &v);
        (void)wr(0, MSR_DEV, 0xC0010201u, v);
        (void)chk(MSR_DEV, 0);
        fin();
    }
    std::puts("header_cxx: ok");
    return 0;
}
