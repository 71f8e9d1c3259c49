//! Start-up: which daemon did we launch? Ours greets on the socketpair at once. LIKWID's own
//! `likwid-accessD` ignores the socketpair and binds `/tmp/likwid-<pid>` instead; then we speak
//! plain LIKWID 5 to it, after making sure the socket really is the one our child made.

use super::machine::Machine;
use crate::device::list_cpus;
use crate::error::StartError;
use crate::policy::sockets_of;
use crate::root::Root;
use crate::wire::{self, Greeting, HwThread, Record, Socket, RECORD_LEN};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getsockopt, recv, sockopt, MsgFlags};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Longest wait for the daemon to greet or to create its socket after spawn.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// LIKWID's client polls for the socket every 2.5 ms; so do we, for LIKWID's daemon only.
const POLL_STEP_MS: u16 = 3;

/// A started daemon: the channel, its (hardware thread, socket) list, and its kind.
pub type Established = (UnixStream, Machine, Flavor);

/// What kind of daemon answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Ours, on the private socketpair: LIKWID 5 records plus the extensions whose
    /// capability bits (`wire::CAP_*`) it announced.
    Ours { capabilities: u64 },
    /// LIKWID's daemon on `/tmp/likwid-<pid>`: plain LIKWID 5 records only.
    Likwid,
}

fn start_failed(why: String) -> StartError {
    StartError::new(libc::EPROTO, format!("likwid-accessD did not start: {why}"))
}

/// Waits for the greeting or LIKWID's socket, whichever the child produces.
pub fn handshake(ours: UnixStream, child: &mut Child, secure: bool) -> Result<Established, StartError> {
    let likwid_path = format!("/tmp/likwid-{}", child.id());
    let deadline = Instant::now() + START_TIMEOUT;
    // LIKWID's daemon may close the socketpair (its stdin) without a word: then only its
    // socket file can still come.
    let mut may_greet = true;
    loop {
        if may_greet {
            let mut fds = [PollFd::new(ours.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(POLL_STEP_MS)).unwrap_or(0) > 0 {
                match pending(&ours) {
                    Some(true) => return greeted(ours),
                    Some(false) => may_greet = false,
                    None => {}
                }
            }
        } else {
            std::thread::sleep(Duration::from_millis(POLL_STEP_MS.into()));
        }
        // While our daemon may still greet, only a socket of our own uid at that path counts
        // (no other user can make one): anything else there may be planted by another user
        // to make our start fail, so it is judged (and refused) only once the channel closed
        // or the wait is over. (LIKWID 5.5's daemon keeps stdin open on systemd machines,
        // where it does not daemonize: its socket must count while the channel is open.)
        // One clock reading per turn: the last turn must judge the path before it gives up.
        let expired = Instant::now() >= deadline;
        let path = Path::new(&likwid_path);
        let waiting = may_greet && !expired;
        let likwid_socket = if waiting { own_socket(path) } else { path.exists() };
        if likwid_socket {
            let stream = connect_likwid(path, deadline)?;
            let root = Root::from_env(secure);
            let cpuinfo = std::fs::read_to_string(root.cpuinfo()).unwrap_or_default();
            let cpus = sockets_of(&cpuinfo, &list_cpus(&root)?);
            return Ok((stream, Machine::from_raw(&cpus), Flavor::Likwid));
        }
        // LIKWID's daemon detaches: its first process exits 0 and a child binds the socket.
        if let Ok(Some(status)) = child.try_wait() {
            if !status.success() {
                // Our daemon greets, then exits when it cannot serve: the greeting may have
                // arrived since the poll above.
                if may_greet && pending(&ours) == Some(true) {
                    return greeted(ours);
                }
                return Err(start_failed(format!("it exited ({status}) without a word")));
            }
        }
        if expired {
            return Err(start_failed(format!("no greeting and no {likwid_path} within {START_TIMEOUT:?}")));
        }
    }
}

/// Whether the greeting has bytes waiting (Some(true)), the peer closed without one
/// (Some(false)), or neither yet (None).
fn pending(ours: &UnixStream) -> Option<bool> {
    let mut probe = [0u8; 1];
    match recv(ours.as_raw_fd(), &mut probe, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
        Ok(0) => Some(false),
        Ok(_) => Some(true),
        Err(_) => None,
    }
}

fn greeted(ours: UnixStream) -> Result<Established, StartError> {
    let (cpus, capabilities) = read_greeting(&ours)?;
    Ok((ours, Machine::new(cpus), Flavor::Ours { capabilities }))
}

fn impostor(path: &Path, why: String) -> StartError {
    StartError::new(
        libc::EACCES,
        format!("refusing {}: {why}; someone may be impersonating the daemon", path.display()),
    )
}

fn own_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_socket() && m.uid() == nix::unistd::getuid().as_raw())
}

/// Connects to LIKWID's socket only if it is a socket file of ours (LIKWID's daemon binds it
/// under the caller's filesystem uid, which no other user can fake) and whoever listens on it
/// runs as root (a setuid daemon) or as us. LIKWID's daemon detaches after spawn, so the
/// listener's pid is not the one we started.
fn connect_likwid(path: &Path, deadline: Instant) -> Result<UnixStream, StartError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| impostor(path, e.to_string()))?;
    let uid = nix::unistd::getuid().as_raw();
    if !meta.file_type().is_socket() || meta.uid() != uid {
        return Err(impostor(path, format!("not a socket owned by uid {uid} (owner {})", meta.uid())));
    }
    // The daemon binds before it listens: retry a refused connect until the deadline.
    let stream = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                std::thread::sleep(Duration::from_millis(POLL_STEP_MS.into()))
            }
            Err(e) => return Err(start_failed(format!("cannot connect to {}: {e}", path.display()))),
        }
    };
    let cred = getsockopt(&stream, sockopt::PeerCredentials).map_err(|e| impostor(path, e.to_string()))?;
    if cred.uid() != 0 && cred.uid() != uid {
        return Err(impostor(path, format!("it is served by uid {} (pid {})", cred.uid(), cred.pid())));
    }
    Ok(stream)
}

/// Our daemon's greeting: its CPU list and capabilities, or the errno and one line saying why
/// it cannot serve.
pub(crate) fn read_greeting(stream: &UnixStream) -> Result<(Vec<(HwThread, Socket)>, u64), StartError> {
    let describe = |e: std::io::Error| start_failed(super::conn::describe(&e));
    stream.set_read_timeout(Some(START_TIMEOUT)).map_err(describe)?;
    // The greeting comes in one write and nothing follows it until we ask: one read takes its
    // record and (up to a few hundred CPUs) its payload, instead of one read for each.
    let mut first = [0u8; RECORD_LEN + 2048];
    let mut got = 0;
    while got < RECORD_LEN {
        match (&*stream).read(&mut first[got..]) {
            Ok(0) => return Err(describe(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(describe(e)),
        }
    }
    let record = Record::decode(first[..RECORD_LEN].try_into().expect("one record"));
    let hello = match Greeting::from_record(&record) {
        Some(hello) if hello.version == wire::PROTOCOL_VERSION => hello,
        _ => {
            return Err(start_failed(format!("unexpected greeting (type {:#x}, version {})", record.kind, record.reg)))
        }
    };
    if hello.payload_len > wire::MAX_GREETING_PAYLOAD {
        return Err(start_failed(format!("greeting payload of {} bytes is too large", hello.payload_len)));
    }
    let mut payload = vec![0u8; hello.payload_len as usize];
    let early = (got - RECORD_LEN).min(payload.len());
    payload[..early].copy_from_slice(&first[RECORD_LEN..RECORD_LEN + early]);
    if got - RECORD_LEN > payload.len() {
        return Err(start_failed(format!(
            "{} bytes after a greeting of {}",
            got - RECORD_LEN - payload.len(),
            payload.len()
        )));
    }
    (&*stream).read_exact(&mut payload[early..]).map_err(describe)?;
    if hello.errno != 0 {
        let why = match String::from_utf8_lossy(&payload).trim() {
            "" => format!("likwid-accessD refused to serve (errno {}) without saying why", hello.errno),
            text => text.to_string(),
        };
        // The number reaches C negated: zero or a negative one would read as success there.
        if !(1..=4095).contains(&hello.errno) {
            return Err(start_failed(format!("refusal with errno {} (not an errno): {why}", hello.errno)));
        }
        return Err(StartError::new(hello.errno, why));
    }
    let cpus = wire::decode_cpu_list(&payload).ok_or_else(|| start_failed("malformed CPU list".into()))?;
    Ok((cpus, hello.capabilities))
}
