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
/// the directory's order; entries the kernel reports deleted (inode 0) are passed over, as
/// glibc's readdir does. Without std's two allocations per entry (ReadDir's copy of the name and
/// `DirEntry::file_name`'s): start-up lists the msr directory (an entry per CPU) and sysfs's
/// PCI functions (600 on a big site), and std's listing cost ~500 instructions per entry. Not
/// through opendir either: it asks fstat of the directory and takes a 32 KiB buffer from the
/// heap, whose pages the daemon then faults in at every start (the records are read here from
/// an 8 KiB buffer on the stack, `getdents64` as readdir makes it).
pub fn for_each_name(path: &std::path::Path, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened by this thread and is owned by nothing else.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut buf = std::mem::MaybeUninit::<[u8; 8192]>::uninit();
    loop {
        // SAFETY: `buf` is writable for its whole size, which is what the kernel is told; it
        // writes at most that many bytes of whole records and returns how many.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), 8192usize) };
        let n = match usize::try_from(n) {
            Ok(0) => return Ok(()),
            Ok(n) => n.min(8192),
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(io::Error::last_os_error()),
        };
        // SAFETY: the kernel initialised the first `n` bytes of `buf`.
        let records = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
        each_record(records, &mut each)?;
    }
}

/// The names in `linux_dirent64` records (include/linux/dirent.h: u64 d_ino, s64 d_off, u16
/// d_reclen, u8 d_type, then the NUL-terminated name), checked as read.
fn each_record(mut records: &[u8], each: &mut impl FnMut(&[u8])) -> io::Result<()> {
    const NAME_AT: usize = 19;
    while !records.is_empty() {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed directory record");
        let reclen = usize::from(u16::from_ne_bytes([*records.get(16).ok_or_else(bad)?, records[17]]));
        if reclen <= NAME_AT || reclen > records.len() {
            return Err(bad());
        }
        let (record, rest) = records.split_at(reclen);
        let inode = u64::from_ne_bytes(record[..8].try_into().map_err(|_| bad())?);
        let name = &record[NAME_AT..];
        let name = &name[..name.iter().position(|&b| b == 0).ok_or_else(bad)?];
        if inode != 0 && name != b"." && name != b".." {
            each(name);
        }
        records = rest;
    }
    Ok(())
}

/// Opens `path` read-write and close-on-exec and says whether it is a character device: one
/// `openat` and one `fstat`, as `OpenOptions::open` and `File::metadata` make them, without
/// their per-call work (std copies the path to add a NUL and asks statx for every field; on a
/// 256-CPU site the daemon's msr files cost ~500 instructions each that way, callgrind).
pub fn open_rdwr_is_char_device(path: &std::ffi::CStr) -> io::Result<(std::fs::File, bool)> {
    use std::os::fd::FromRawFd;
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened by this thread and is owned by nothing else.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut st = std::mem::MaybeUninit::<libc::stat64>::uninit();
    // SAFETY: `fd` is open (owned by `file`) and `st` is writable storage for one stat64
    // (fstat64, the symbol std imports already: no new dynamic symbol for the loader to bind).
    if unsafe { libc::fstat64(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so it filled `st`.
    let mode = unsafe { st.assume_init() }.st_mode;
    Ok((file, mode & libc::S_IFMT == libc::S_IFCHR))
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds, None when the clock cannot be read. The lock check
/// reads it once per request; through nix's wrapper and `Duration` that cost about 75
/// instructions, a tenth of the daemon's work per batched read (callgrind).
#[inline(always)]
pub fn coarse_monotonic_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call; the clock id is
    // a constant the kernel knows (vDSO, no system call).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (rc == 0).then(|| (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64))
}

/// Reads the 8 bytes at `offset` of `fd` (pread(2)): the count read and the bytes as a
/// little-endian value (zeros where the read stopped short), or the errno. The MSR read path:
/// std's `read_at` is not inlined across the crate boundary and builds an `io::Result` per call
/// (about 20 instructions per batched read, callgrind); and it is the plain system call, because
/// in a process with more than one thread (the service; the daemon with per-CPU workers)
/// glibc's wrapper brackets each call with its cancellation switch (~47 instructions of the
/// service's single read). Nothing here cancels threads.
#[inline(always)]
pub fn pread8(fd: std::os::fd::RawFd, offset: u64) -> Result<(usize, u64), i32> {
    let mut buf = [0u8; 8];
    let Ok(offset) = libc::off_t::try_from(offset) else { return Err(libc::EINVAL) };
    // SAFETY: `buf` is a writable 8-byte buffer for the duration of the call, and pread writes
    // nothing else: whatever `fd` is (closed, not a file), the worst is an error return.
    let n = unsafe { libc::syscall(libc::SYS_pread64, libc::c_long::from(fd), buf.as_mut_ptr(), buf.len(), offset) };
    match usize::try_from(n) {
        Ok(n) => Ok((n, u64::from_le_bytes(buf))),
        Err(_) => Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)),
    }
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

/// pwrite(2) as a plain system call, for the register files, for the reason `pread8` gives.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_name_lists_what_read_dir_lists() {
        let dir = std::env::temp_dir().join(format!("likwid-sys-names-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Enough entries of every name length for several 8 KiB reads of the directory.
        for i in 0..700 {
            std::fs::write(dir.join(format!(".{i}{}", "x".repeat(i % 200))), "").unwrap();
        }
        std::fs::create_dir(dir.join("0000:3a:0a.2")).unwrap();
        let mut ours = Vec::new();
        for_each_name(&dir, |name| ours.push(name.to_vec())).unwrap();
        let mut std_names: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| std::os::unix::ffi::OsStrExt::as_bytes(e.unwrap().file_name().as_os_str()).to_vec())
            .collect();
        ours.sort();
        std_names.sort();
        assert_eq!(ours.len(), 701);
        assert_eq!(ours, std_names);
        assert!(for_each_name(&dir.join(".0"), |_| {}).is_err(), "a file is not a directory");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(for_each_name(&dir, |_| {}).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    fn record(inode: u64, name: &[u8], reclen: u16) -> Vec<u8> {
        let mut r = inode.to_ne_bytes().to_vec();
        r.extend_from_slice(&0i64.to_ne_bytes());
        r.extend_from_slice(&reclen.to_ne_bytes());
        r.push(libc::DT_REG);
        r.extend_from_slice(name);
        r.resize(usize::from(reclen), 0);
        r
    }

    #[test]
    fn directory_records_are_checked_as_read() {
        let names = |records: &[u8]| {
            let mut out = Vec::new();
            each_record(records, &mut |n: &[u8]| out.push(n.to_vec())).map(|()| out)
        };
        let good =
            [record(7, b"a", 24), record(0, b"deleted", 32), record(9, b".", 24), record(3, b"msr", 24)].concat();
        assert_eq!(names(&good).unwrap(), vec![b"a".to_vec(), b"msr".to_vec()]);
        for bad in [
            record(7, b"a", 24)[..20].to_vec(),          // cut short
            record(7, b"a", 19),                         // no room for a name
            [record(7, b"a", 24), vec![0; 10]].concat(), // a partial record after it
            record(7, b"abcde", 24),                     // a name filling its record without a NUL
        ] {
            assert_eq!(names(&bad).unwrap_err().kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
        assert_eq!(names(&[]).unwrap(), Vec::<Vec<u8>>::new());
    }
}
