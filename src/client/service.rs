//! The node's service (`likwid-accessD --service`, root-started, no setuid file): when its
//! socket accepts a connection, our library holds its session there instead of starting a
//! daemon. Not used when `LIKWID_ACCESS_SERVICE=off` (honoured even under secure-exec: it only
//! makes the caller start the daemon, which decides its own rights), nor when the caller
//! named a daemon (`LIKWID_ACCESSD`) or a simulated machine (`LIKWID_ACCESS_ROOT`): those ask
//! for a daemon of their own (outside secure-exec, where they are honoured at all).

use super::conn::Connection;
use super::handshake::START_TIMEOUT;
use crate::error::StartError;
use crate::service::protocol::{Hello, SOCKET_PATH};
use nix::sys::socket::{connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::sys::time::TimeVal;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// A session and the machine's (hardware thread, socket) list, as `launch` returns them.
type Started = Result<(Connection, Vec<(u32, u32)>), StartError>;

/// `off`: never use the service; start the daemon as without one.
pub const SERVICE_ENV: &str = "LIKWID_ACCESS_SERVICE";

/// Whether this process should try the service at all.
fn wanted(secure: bool) -> bool {
    if std::env::var_os(SERVICE_ENV).is_some_and(|v| v == "off") {
        return false;
    }
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    secure || !(set(super::DAEMON_ENV) || set(crate::root::ROOT_ENV))
}

/// Connects with a bounded wait: a connect to a listener whose backlog is full blocks for the
/// send timeout (net/unix/af_unix.c, unix_stream_connect), so a stuck service cannot hang us.
fn connect_bounded(path: &str) -> std::io::Result<UnixStream> {
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    let secs = START_TIMEOUT.as_secs() as i64;
    setsockopt(&fd, sockopt::SendTimeout, &TimeVal::new(secs, 0))?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(UnixStream::from(fd))
}

/// Whether our library would use the node's service now (for `likwid-access doctor`): wanted,
/// and its socket accepts. The probe says nothing and closes; the service ignores that.
pub fn in_use(secure: bool) -> bool {
    wanted(secure) && connect_bounded(SOCKET_PATH).is_ok()
}

/// The service's session: None when there is no service to use (then start the daemon),
/// Some(Err) when the service refused us (no fallback: the administrator decided).
pub fn connect_service(secure: bool) -> Option<Started> {
    if !wanted(secure) {
        return None;
    }
    // No socket, or nobody listening (a service that was stopped or killed): the daemon.
    let mut stream = connect_bounded(SOCKET_PATH).ok()?;
    let hello = Hello::Session(super::PCI_NUMBERING).encode();
    if let Err(e) = stream.write_all(&hello) {
        return Some(Err(StartError::new(libc::EPROTO, format!("likwid-access service at {SOCKET_PATH}: {e}"))));
    }
    Some(super::read_greeting(&stream).map(|(cpus, capabilities)| (Connection::to_service(stream, capabilities), cpus)))
}
