//! LIKWID 5's socket start (facts §2): bind `/tmp/likwid-<pid>` 0600 as the caller, wait 15 s
//! for one connection, unlink the path, serve. Runs after the privilege drop, so the socket
//! is the caller's file without LIKWID's setfsuid dance.

use super::checked_peer;
use super::client_library;
use super::serve::{serve, Ended};
use super::session::Session;
use crate::engine::Machine;
use crate::error::StartError;
use crate::policy::pci::Numbering;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use nix::sys::stat::{fchmodat, umask, FchmodatFlags, Mode};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// LIKWID's client gives up after about 1000 connect attempts 2.5 ms apart; we wait 15 s.
const ACCEPT_TIMEOUT_MS: u16 = 15_000;

fn start_error(what: &str, path: &Path, e: nix::Error) -> StartError {
    StartError::new(e as i32, format!("{what} {}: {e}", path.display()))
}

pub(super) fn listen_on(path: &Path) -> Result<UnixListener, StartError> {
    umask(Mode::from_bits_truncate(0o077));
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| start_error("socket for", path, e))?;
    let addr = UnixAddr::new(path).map_err(|e| start_error("socket path", path, e))?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| start_error("cannot bind", path, e))?;
    fchmodat(None, path, Mode::from_bits_truncate(0o600), FchmodatFlags::NoFollowSymlink)
        .or_else(|_| fchmodat(None, path, Mode::from_bits_truncate(0o600), FchmodatFlags::FollowSymlink))
        .map_err(|e| start_error("cannot chmod", path, e))?;
    listen(&fd, Backlog::new(1).expect("backlog 1 is valid")).map_err(|e| start_error("cannot listen on", path, e))?;
    Ok(UnixListener::from(fd))
}

/// Waits for the one client LIKWID's library connects.
pub(super) fn accept_one(listener: &UnixListener, path: &Path) -> Result<UnixStream, StartError> {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::from(ACCEPT_TIMEOUT_MS)).map_err(|e| start_error("poll on", path, e))?;
    if ready == 0 {
        return Err(StartError::new(libc::ETIMEDOUT, format!("no client connected to {} within 15 s", path.display())));
    }
    let (stream, _) = listener.accept().map_err(|e| {
        StartError::new(e.raw_os_error().unwrap_or(libc::EIO), format!("accept on {}: {e}", path.display()))
    })?;
    Ok(stream)
}

/// Removes the socket path however serving ends.
pub(super) struct Unlink(pub(super) PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Serves the one LIKWID client that connects, in the `PciDeviceIndex` numbering of the
/// library it loaded (else `fallback`'s, with what decided that).
pub fn serve_socket(
    machine: Machine,
    fallback: &(Numbering, String),
    real_uid: u32,
    trace: Option<Box<dyn Write>>,
) -> Result<Ended, StartError> {
    let path = PathBuf::from(format!("/tmp/likwid-{}", std::process::id()));
    let listener = listen_on(&path)?;
    let unlink = Unlink(path.clone());
    let mut stream = accept_one(&listener, &path)?;
    drop(unlink);
    drop(listener);
    let peer = checked_peer(&stream, real_uid)?;
    let mut engine = machine.serve_as(client_library::numbering_for_client(peer.pid, fallback));
    Ok(serve(&mut stream, Session::new(&mut engine, peer, trace, false), false))
}
