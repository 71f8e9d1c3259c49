//! Process hygiene at start and the one-way drop to the caller's identity once every device
//! file is open. The kernel checks CAP_SYS_RAWIO when /dev/cpu/N/msr is opened (msr_open) and
//! CAP_SYS_ADMIN for extended PCI config space against the opener's credentials
//! (file_ns_capable on the open file), so no capability is needed after the opens.

use crate::error::StartError;
use crate::sys;
use nix::sys::stat::{umask, Mode};
use nix::unistd::{getresgid, getresuid, setgroups, setresgid, setresuid, Gid, Uid};
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

/// First thing in main: a known umask and directory, nothing inherited but the channel on
/// stdin (when there is one) and /dev/null as stdout and stderr (as stdin too otherwise).
/// An error means an inherited descriptor could not be closed: the daemon must not serve.
pub fn sanitize_process(keep_stdin: bool, keep_stderr: bool) -> std::io::Result<()> {
    umask(Mode::from_bits_truncate(0o077));
    let _ = std::env::set_current_dir("/");
    let closed = sys::close_fds_from(3);
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        let targets: &[i32] = match (keep_stdin, keep_stderr) {
            (true, true) => &[1],
            (true, false) => &[1, 2],
            (false, true) => &[0, 1],
            (false, false) => &[0, 1, 2],
        };
        for &fd in targets {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    closed
}

fn fail(what: &str, e: impl std::fmt::Display) -> StartError {
    StartError::new(libc::EPERM, format!("cannot drop privileges ({what}): {e}"))
}

/// The `CapEff` mask from /proc/self/status.
pub fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Becomes the real user for good: groups, gids, uids, then no capabilities and no way to
/// regain any (PR_SET_NO_NEW_PRIVS). A real uid of root keeps root (root started it).
/// Verified afterwards; any failure means the daemon must not serve.
pub fn drop_to_real_user() -> Result<(), StartError> {
    let uids = getresuid().map_err(|e| fail("getresuid", e))?;
    let gids = getresgid().map_err(|e| fail("getresgid", e))?;
    let (uid, gid) = (uids.real, gids.real);
    if !uid.is_root() {
        if uids.effective.is_root() {
            setgroups(&[]).map_err(|e| fail("setgroups", e))?;
        }
        setresgid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
        setresuid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;
        sys::clear_capabilities().map_err(|e| fail("capset", e))?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| fail("PR_SET_NO_NEW_PRIVS", e))?;
    verify(uid, gid)
}

fn verify(uid: Uid, gid: Gid) -> Result<(), StartError> {
    let uids = getresuid().map_err(|e| fail("getresuid", e))?;
    let gids = getresgid().map_err(|e| fail("getresgid", e))?;
    let all_uid = [uids.real, uids.effective, uids.saved].iter().all(|u| *u == uid);
    let all_gid = [gids.real, gids.effective, gids.saved].iter().all(|g| *g == gid);
    let caps = if uid.is_root() { Some(0) } else { effective_capabilities() };
    if !all_uid || !all_gid || caps != Some(0) {
        return Err(fail("verify", format!("uids {uids:?} gids {gids:?} CapEff {caps:?}")));
    }
    Ok(())
}
