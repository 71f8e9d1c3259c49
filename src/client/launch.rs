//! Finding and starting our daemon on a private socketpair (no guessable path in /tmp).

use super::conn::Connection;
use crate::daemon::{CHANNEL_ARG, DEBUG_ENV, NUMBERING_ARG, TRACE_ENV, WORKERS_ENV};
use crate::error::StartError;
use crate::root::ROOT_ENV;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Overrides where the daemon is (outside secure-exec).
pub const DAEMON_ENV: &str = "LIKWID_ACCESSD";
/// Where `make install` put the daemon (compiled in).
pub const INSTALLED_DAEMON: &str = env!("LIKWID_ACCESS_DAEMON_PATH");

pub fn daemon_path(secure_exec: bool) -> PathBuf {
    match std::env::var_os(DAEMON_ENV) {
        Some(p) if !secure_exec && !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(INSTALLED_DAEMON),
    }
}

/// Starts the daemon with the channel on its stdin and an environment holding only what it
/// may honour (it ignores even that under secure-exec). Returns the connection and the CPUs.
/// The node's service, when there is one, serves instead (no process started).
pub fn launch(secure_exec: bool) -> Result<(Connection, Vec<(u32, u32)>), StartError> {
    if let Some(session) = super::service::connect_service(secure_exec) {
        return session;
    }
    let path = daemon_path(secure_exec);
    // Checked up front: some spawn paths (posix_spawn under valgrind) report a missing
    // program only as exit status 127, which would read as a broken daemon.
    if let Err(e) = nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK) {
        let hint =
            if e == nix::Error::ENOENT { format!(" (run `make install`, or set {DAEMON_ENV})") } else { String::new() };
        return Err(StartError::new(e as i32, format!("cannot start {}: {}{hint}", path.display(), e.desc())));
    }
    let (ours, theirs) = UnixStream::pair()
        .map_err(|e| StartError::new(e.raw_os_error().unwrap_or(libc::EIO), format!("socketpair: {e}")))?;
    let mut cmd = Command::new(&path);
    cmd.arg(CHANNEL_ARG)
        .arg(format!("{NUMBERING_ARG}{}", super::PCI_NUMBERING.label()))
        .env_clear()
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null());
    if !secure_exec {
        for var in [ROOT_ENV, DEBUG_ENV, TRACE_ENV, WORKERS_ENV] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
    }
    let child = cmd.spawn().map_err(|e| {
        StartError::new(e.raw_os_error().unwrap_or(libc::EIO), format!("cannot start {}: {e}", path.display()))
    })?;
    // The child holds its end now; the parent's copy went with `cmd`.
    drop(cmd);
    Connection::establish(ours, child, secure_exec)
}
