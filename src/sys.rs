//! The few libc calls that std and nix do not cover. The only module besides `capi` that may
//! use `unsafe`; each block says why it is sound.
#![allow(unsafe_code)]

use std::io;

/// True when the kernel started this process in secure-exec mode (setuid, setgid or file
/// capabilities): then the environment belongs to an untrusted caller.
pub fn secure_exec() -> bool {
    // SAFETY: getauxval only reads the process's auxiliary vector; AT_SECURE is a valid key.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds, None when the clock cannot be read. The lock check
/// reads it once per request; through nix's wrapper and `Duration` that cost about 75
/// instructions, a tenth of the daemon's work per batched read (callgrind).
pub fn coarse_monotonic_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call; the clock id is
    // a constant the kernel knows (vDSO, no system call).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (rc == 0).then(|| (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64))
}

/// Registers fork handlers (run by fork(2), not by posix_spawn or vfork).
pub fn atfork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: the handlers are plain extern "C" functions that live for the whole program.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    debug_assert_eq!(rc, 0);
}

/// The open descriptors from `first` up, as /proc/self/fd lists them (without the one the
/// listing itself used).
fn open_fds_from(first: i32) -> io::Result<Vec<i32>> {
    let listed: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first)
        .collect();
    // The listing's own descriptor is closed by now: F_GETFD tells it apart.
    Ok(listed.into_iter().filter(|&fd| nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_ok()).collect())
}

/// Closes every file descriptor from `first` up, and fails unless none is left open: a
/// descriptor inherited from the caller (a file, a socket) must not reach the privileged
/// daemon. close_range(2) first; where it fails (kernels before 5.9, seccomp filters) each
/// listed descriptor is closed on its own.
pub fn close_fds_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors; nothing in this process holds a Rust owner
    // of them yet (it runs first thing in the daemon's main).
    if unsafe { libc::close_range(first, u32::MAX, 0) } == 0 {
        return Ok(());
    }
    let first = i32::try_from(first).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    for fd in open_fds_from(first)? {
        // SAFETY: as above; `fd` is one of the inherited descriptors nothing here owns.
        unsafe { libc::close(fd) };
    }
    match open_fds_from(first)?.as_slice() {
        [] => Ok(()),
        left => Err(io::Error::other(format!("descriptors {left:?} stay open"))),
    }
}

/// Empties the permitted, effective and inheritable capability sets (which also empties the
/// ambient set). Dropping capabilities never needs a privilege.
pub fn clear_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [Data::default(); 2];
    // SAFETY: header and data match the kernel's __user_cap_header_struct and the two
    // __user_cap_data_struct that version 3 takes; both outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `Mmm dd hh:mm:ss` in UTC, the timestamp syslog records carry (RFC 3164). Not local time:
/// that would honour the TZ of whoever started a setuid daemon, and date its records wrongly.
pub fn syslog_timestamp() -> String {
    // SAFETY: time(NULL) only returns the clock; gmtime_r writes into our zeroed tm and reads
    // no environment.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::gmtime_r(&now, &mut tm);
        tm
    };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("Jan");
    format!("{month} {:2} {:02}:{:02}:{:02}", tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
}
