//! likwid-accessD. Its `main` is a C one: std's runtime set-up before a Rust `main` costs the
//! daemon about 0.1 M instructions and 10 system calls at every start (it finds the main
//! thread's stack by parsing /proc/self/maps); `daemon_entry` does the part the daemon needs.
//! (The test harness brings its own `main`.)
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: std::os::raw::c_int, _argv: *const *const std::os::raw::c_char) -> std::os::raw::c_int {
    likwid_access::daemon_entry()
}
