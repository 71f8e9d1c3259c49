//! The floor of the daemon's private memory (issue 14): the least a Rust daemon built like ours
//! can hold. std linked, the daemon's own C `main` instead of std's runtime set-up (as
//! src/bin/likwid-accessD.rs), and bench.sh compiles it with the daemon's release flags and link
//! arguments (opt-level 3, unwinding panics, PIE, full RELRO with BIND_NOW, DT_RELR, the daemon's
//! linker script). It echoes 32-byte records on the socket it gets as standard input and blocks
//! in `read` between them, as the daemon does between requests; bench.c measures it at the same
//! moment and the same way as both daemons. NOT installed: bench.sh builds it into a scratch
//! directory only.
#![no_main]

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;

#[no_mangle]
pub extern "C" fn main(_argc: std::os::raw::c_int, _argv: *const *const std::os::raw::c_char) -> std::os::raw::c_int {
    // SAFETY: bench.c spawns this program with one end of a socketpair as standard input, which
    // nothing else in the process uses or closes; the stream owns it from here on.
    let mut channel = unsafe { UnixStream::from_raw_fd(0) };
    let mut record = [0u8; 32];
    while channel.read_exact(&mut record).is_ok() && channel.write_all(&record).is_ok() {}
    0
}
