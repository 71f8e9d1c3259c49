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

/// The part of std's runtime set-up before a Rust `main` that the daemon relies on, for its own
/// C `main` (src/bin/likwid-accessD.rs). Descriptors 0, 1 and 2 open: a closed one is opened on
/// /dev/null, as std does, else the first device file opened would become stdin, stdout or
/// stderr and a message meant for stderr would be written into it. SIGPIPE ignored: a peer
/// that went away is an EPIPE error, not the end of the daemon. Left out: std's guard for
/// main-thread stack overflows, which finds the stack through glibc's pthread_getattr_np
/// (it reads and parses /proc/self/maps: ~0.1 M instructions and 10 system calls at every
/// start, callgrind and strace); an overflow then ends the daemon with SIGSEGV instead of a
/// message and SIGABRT.
pub fn runtime_setup() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: `fds` is a writable array of three pollfd for the duration of the call.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } != -1;
    for pfd in fds {
        let closed = if polled {
            pfd.revents & libc::POLLNVAL != 0
        } else {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            let flags = unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) };
            flags == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        };
        // SAFETY: a constant NUL-terminated path. The new descriptor is the lowest free one,
        // which is `pfd.fd`: every lower one is open by now.
        if closed && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) } != pfd.fd {
            std::process::abort();
        }
    }
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; no handler code runs.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        std::process::abort();
    }
}

/// Calls `each` with the name of every entry of the directory `path` but `.` and `..`, in
/// the directory's order; entries that cannot be read are passed over (as `read_dir().flatten()`
/// does). Without std's two allocations per entry (ReadDir's copy of the name and
/// `DirEntry::file_name`'s): start-up lists the msr directory (an entry per CPU) and sysfs's
/// PCI functions (600 on a big site), and std's listing cost ~500 instructions per entry.
pub fn for_each_name(path: &std::path::Path, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    struct Dir(*mut libc::DIR);
    impl Drop for Dir {
        fn drop(&mut self) {
            // SAFETY: the DIR came from opendir and is closed here only.
            unsafe { libc::closedir(self.0) };
        }
    }
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `path` is NUL-terminated and outlives the call; glibc opens with O_CLOEXEC.
    let dir = Dir(unsafe { libc::opendir(path.as_ptr()) });
    if dir.0.is_null() {
        return Err(io::Error::last_os_error());
    }
    loop {
        // SAFETY: `dir.0` is an open DIR that only this loop reads.
        let entry = unsafe { libc::readdir64(dir.0) };
        if entry.is_null() {
            return Ok(());
        }
        // SAFETY: readdir64 returned a dirent64 whose d_name is NUL-terminated; it stays valid
        // until the next readdir64 on `dir`, and the name is used before that.
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            each(name);
        }
    }
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
    set_capabilities(0)
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

/// The supplementary groups of a Unix socket's peer as the kernel recorded them at connect
/// time (SO_PEERGROUPS, Linux 4.13; nix has no wrapper). The list is bounded by NGROUPS_MAX.
pub fn peer_groups(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    use std::os::fd::AsRawFd;
    const NGROUPS_MAX: usize = 65_536;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `groups`, which holds that many,
        // and stores the size it needs (or wrote) in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) || count <= groups.len() || count > NGROUPS_MAX {
            return Err(e);
        }
        groups.resize(count, 0);
    }
}

/// recv(2) (with `flags`) and send(2) (MSG_NOSIGNAL | MSG_DONTWAIT) on a stream socket, as
/// plain system calls. send never blocks: a full socket buffer is WouldBlock, and the caller
/// waits for room with `wait_ready` and its own deadline (no SO_SNDTIMEO to set). glibc's
/// wrappers are cancellation points: in a process with more than one thread (the service)
/// each call is bracketed by __pthread_enable/disable_asynccancel, ~45 instructions apiece,
/// 93 of the ~620 the service spent on a single read (callgrind). Nothing here cancels
/// threads, so the bracket buys nothing. Errors as std reports them (EINTR is `Interrupted`).
pub fn recv_plain(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which is valid and
    // writable for that long; no address is asked for (null, null).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
            flags,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// See `recv_plain`.
pub fn send_plain(fd: std::os::fd::BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`, which is valid for that
    // long; no address is given (a connected socket).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd.as_raw_fd(),
            buf.as_ptr(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// pread(2) and pwrite(2) as plain system calls, for the register files: in a process with
/// more than one thread (the service; the daemon once it has per-CPU workers) glibc's
/// wrappers bracket each call with __pthread_enable/disable_asynccancel, ~47 instructions of
/// the service's single read (callgrind). Nothing here cancels threads. Errors as std's.
pub fn pread_plain(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let offset = libc::off64_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which is valid and
    // writable for that long.
    let rc = unsafe { libc::syscall(libc::SYS_pread64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len(), offset) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// See `pread_plain`.
pub fn pwrite_plain(fd: std::os::fd::BorrowedFd<'_>, buf: &[u8], offset: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let offset = libc::off64_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`, which is valid for that long.
    let rc = unsafe { libc::syscall(libc::SYS_pwrite64, fd.as_raw_fd(), buf.as_ptr(), buf.len(), offset) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Keeps only the capabilities in `keep` (a mask of CAP_* bit numbers), for good: drops every
/// other one from the bounding set, locks the securebits so root's uid 0 regains nothing
/// through execve or setuid (capabilities(7), "The securebits flags"), then sets permitted and
/// effective to `keep` and empties the inheritable (and so the ambient) set. Needs
/// CAP_SETPCAP at the start, which is then dropped with the rest unless kept.
pub fn keep_only_capabilities(keep: u64) -> io::Result<()> {
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            // EINVAL: past the kernel's last capability; the rest do not exist.
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(e);
        }
    }
    // SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, SECBIT_KEEP_CAPS_LOCKED, SECBIT_NO_CAP_AMBIENT_RAISE
    // and their locks (linux/securebits.h).
    const SECURE_BITS: libc::c_ulong = 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x40 | 0x80;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECURE_BITS, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    set_capabilities(keep)
}

pub fn set_capabilities(keep: u64) -> io::Result<()> {
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
    let (low, high) = (keep as u32, (keep >> 32) as u32);
    let data = [
        Data { effective: low, permitted: low, inheritable: 0 },
        Data { effective: high, permitted: high, inheritable: 0 },
    ];
    // SAFETY: header and data match the kernel's __user_cap_header_struct and the two
    // __user_cap_data_struct that version 3 takes; both outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `fd` is readable (or, with `write`, writable) or `timeout` has passed: Ok(false)
/// then. An interrupted wait counts as ready (the caller tries again and waits again).
pub fn wait_ready(fd: std::os::fd::BorrowedFd<'_>, write: bool, timeout: std::time::Duration) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let events = if write { PollFlags::POLLOUT } else { PollFlags::POLLIN };
    let ms = PollTimeout::try_from(timeout.as_millis().clamp(1, i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
    match poll(&mut [PollFd::new(fd, events)], ms) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Receives into `buf` with any descriptors passed alongside (SCM_RIGHTS), each owned at once
/// so none can leak; `truncated` when the sender passed more than there was room for (the
/// kernel closed the rest). `wait`: block until something arrives, else WouldBlock.
pub fn recv_with_fds(
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
    wait: bool,
) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>, bool)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let flags = if wait { MsgFlags::MSG_CMSG_CLOEXEC } else { MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT };
    let msg = recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(&mut space), flags)?;
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this process for this
            // message; nothing else knows or owns them.
            fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
        }
    }
    Ok((msg.bytes, fds, truncated))
}
