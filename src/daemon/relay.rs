//! The relay (issue 11, item 5): unmodified LIKWID execs `likwid-accessD` with no arguments
//! (LIKWID 5.5.1 src/access_client.c, access_client_startDaemon). When that binary has no
//! privilege to open the msr devices (no setuid bit, no file capability) and the service
//! listens on its socket, it serves nothing itself: it binds
//! `/tmp/likwid-<pid>` as LIKWID's daemon does, accepts the one client, hands the accepted
//! socket to the service (hello mode 2, the descriptor attached with SCM_RIGHTS), reads the
//! service's one-byte answer and exits. The service then speaks LIKWID's wire on that socket,
//! authorised by the socket's own peer credentials. Nothing here needs a privilege.
//!
//! The hello's argument is the client's PCI numbering, read here from the client's
//! `/proc/<pid>/maps` (which `liblikwid.so.5.N` it mapped, `client_library.rs`), so that the
//! service needs no CAP_SYS_PTRACE: the relay runs as the client's uid (it checks the peer's
//! uid), and LIKWID's client is dumpable, so PTRACE_MODE_READ (fs/proc/base.c) lets it read.
//!
//! Every wait is bounded; the socket path is gone however the relay ends; every failure is in
//! syslog and the exit status (LIKWID's client then sees its connection close).

use super::checked_peer;
use super::client_library::numbering_from_maps;
use super::compat::{accept_one, listen_on, Unlink};
use super::privilege::effective_capabilities;
use crate::error::StartError;
use crate::policy::pci::Numbering;
use crate::root::ROOT_ENV;
use crate::service::protocol::Hello;
use crate::service::protocol::SOCKET_PATH;
use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};
use std::io::{IoSlice, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Non-secure-exec only: another service socket, for tests. LIKWID starts its daemon with an
/// empty environment, so in real use this is never set; it can only send the caller's own
/// connection to a socket of the caller's choice, which the caller could do anyway.
pub const SERVICE_SOCKET_ENV: &str = "LIKWID_ACCESS_SERVICE_SOCKET";

/// The kernel's msr driver checks CAP_SYS_RAWIO at open (arch/x86/kernel/msr.c, msr_open).
const CAP_SYS_RAWIO: u32 = 17;
/// A service that is up accepts at once; one whose backlog is full gets this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The service answers after a few checks on the descriptor (SO_PEERCRED, its cgroup).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The first line of /proc/self/uid_map in the initial user namespace: capabilities held in
/// any other user namespace do not count for msr_open (capable() checks init_user_ns).
fn in_initial_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"],
        // No /proc: nothing says otherwise.
        Err(_) => true,
    }
}

/// Whether this process could open /dev/cpu/N/msr: CAP_SYS_RAWIO in its effective set, in the
/// initial user namespace. Root has it; a setuid-root or `setcap cap_sys_rawio` copy has it;
/// a plain binary run by a user, or root of a rootless container, has not.
fn can_open_msr() -> bool {
    let rawio = match effective_capabilities() {
        Some(caps) => caps & (1 << CAP_SYS_RAWIO) != 0,
        None => nix::unistd::geteuid().is_root(),
    };
    rawio && in_initial_user_namespace()
}

/// The service socket to relay to, when this start of LIKWID's daemon should relay: not under
/// secure-exec (then it has privileges of its own), not on a simulated machine (a test asked
/// for that machine), no privilege to open the msr devices, and the service's socket exists.
pub fn service_socket(secure: bool) -> Option<PathBuf> {
    if secure || std::env::var_os(ROOT_ENV).is_some_and(|r| !r.is_empty()) || can_open_msr() {
        return None;
    }
    let path = match std::env::var_os(SERVICE_SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(SOCKET_PATH),
    };
    let is_socket = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_socket());
    is_socket.then_some(path)
}

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> StartError {
    move |e| StartError::new(e.raw_os_error().unwrap_or(libc::EIO), format!("{what}: {e}"))
}

/// Connects to the service. A blocking connect() to a listener whose backlog is full waits
/// until it accepts, without a limit; a non-blocking one fails with EAGAIN, retried here for a
/// bounded time.
fn connect_service(path: &Path) -> Result<UnixStream, StartError> {
    let fail =
        |e: nix::Error| StartError::new(e as i32, format!("cannot connect to the service at {}: {e}", path.display()));
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)
        .map_err(fail)?;
    let addr = UnixAddr::new(path).map_err(fail)?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(nix::Error::EAGAIN) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(nix::Error::EAGAIN) => {
                return Err(StartError::new(
                    libc::ETIMEDOUT,
                    format!(
                        "the service at {} accepted no connection within {} s",
                        path.display(),
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ))
            }
            Err(e) => return Err(fail(e)),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false).map_err(io_error(format!("connection to the service at {}", path.display())))?;
    Ok(stream)
}

/// Sends the hand-over hello with the client's socket attached, in one sendmsg (the protocol
/// says one), and returns the service's answer: 0 taken over, else a positive errno.
fn hand_over(
    service: &mut UnixStream,
    client: &UnixStream,
    numbering: Option<Numbering>,
    path: &Path,
) -> Result<u8, StartError> {
    let what = |w: &str| format!("{w} the service at {}", path.display());
    service.set_write_timeout(Some(CONNECT_TIMEOUT)).map_err(io_error(what("timeout on")))?;
    service.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io_error(what("timeout on")))?;
    let hello = Hello::HandOver(numbering).encode();
    let fds = [client.as_raw_fd()];
    let sent = sendmsg::<()>(
        service.as_raw_fd(),
        &[IoSlice::new(&hello)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| StartError::new(e as i32, format!("{}: {e}", what("cannot hand the client over to"))))?;
    if sent != hello.len() {
        return Err(StartError::new(libc::EIO, format!("{}: sent {sent} of 8 bytes", what("short hello to"))));
    }
    let mut answer = [0u8; 1];
    service.read_exact(&mut answer).map_err(|e| {
        let why = if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())
        } else {
            e.to_string()
        };
        StartError::new(e.raw_os_error().unwrap_or(libc::EPROTO), format!("{}: {why}", what("no answer from")))
    })?;
    Ok(answer[0])
}

fn relay(service_path: &Path, real_uid: u32) -> Result<(), StartError> {
    let path = PathBuf::from(format!("/tmp/likwid-{}", std::process::id()));
    let listener = listen_on(&path)?;
    let unlink = Unlink(path.clone());
    let client = accept_one(&listener, &path)?;
    drop(unlink);
    drop(listener);
    // The socket is ours and 0600; only root could have connected besides us. The service
    // checks this again (it trusts no relay).
    let peer = checked_peer(&client, real_uid)?;
    // Unknown (0 on the wire) when the maps do not tell: the service's fallback decides then.
    let numbering = match numbering_from_maps(peer.pid) {
        Ok((n, path)) => {
            log::debug!("LIKWID client pid {} speaks LIKWID {} PCI device numbering: {path}", peer.pid, n.label());
            Some(n)
        }
        Err(why) => {
            log::debug!("LIKWID client pid {}: numbering left to the service: {why}", peer.pid);
            None
        }
    };
    let mut service = connect_service(service_path)?;
    match hand_over(&mut service, &client, numbering, service_path)? {
        0 => {
            log::debug!("handed LIKWID client pid {} (uid {}) to the service", peer.pid, peer.uid);
            Ok(())
        }
        errno => Err(StartError::new(
            i32::from(errno),
            format!(
                "the service at {} refused LIKWID client pid {}: {}",
                service_path.display(),
                peer.pid,
                std::io::Error::from_raw_os_error(i32::from(errno))
            ),
        )),
    }
}

/// Relays LIKWID's one client to the service; the exit status says whether it was taken over.
pub fn run(service_path: &Path) -> ExitCode {
    // Nothing to drop (no privilege), but nothing to gain either: no exec may add any.
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        log::error!("relay: PR_SET_NO_NEW_PRIVS: {e}");
        return ExitCode::FAILURE;
    }
    match relay(service_path, nix::unistd::getuid().as_raw()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("relay to the service failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handover_hello_is_mode_2_version_1_with_the_numbering_code() {
        assert_eq!(Hello::HandOver(None).encode(), *b"LKAS\x01\x02\x00\x00");
        assert_eq!(Hello::HandOver(Some(Numbering::Likwid52)).encode(), *b"LKAS\x01\x02\x02\x05");
    }

    #[test]
    fn secure_exec_never_relays() {
        assert_eq!(service_socket(true), None);
    }
}
