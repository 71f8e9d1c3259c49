//! One connection: the hello, then a session for our library (mode 1), a LIKWID client's
//! socket handed over by the relay (mode 2), or one admin command (mode 3). Every wait here
//! is bounded until a session is running; a session may idle as long as its client likes
//! (it costs this connection's thread only).

use super::admin::{self, Command};
use super::config::{Access, Identity, Reads};
use super::core::{Client, Rights};
use super::placement::Placement;
use super::protocol::{Hello, HELLO_LEN};
use super::serve::{self, Plain};
use super::{scope, Service};
use crate::error::StartError;
use crate::lock::LockWatch;
use crate::policy::pci::Numbering;
use crate::sys;
use crate::wire;
use nix::sys::socket::{
    getpeername, getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike, SockaddrStorage,
};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait for a hello or an admin command.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a reply may wait for a client that does not read: its session then ends.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A socket peer as the kernel saw it at connect time.
#[derive(Debug, Clone)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
}

pub fn peer_of(stream: &impl AsFd) -> std::io::Result<Peer> {
    let cred = getsockopt(stream, sockopt::PeerCredentials)?;
    Ok(Peer { uid: cred.uid(), gid: cred.gid(), pid: cred.pid() })
}

/// The identity the config decides on: uid, primary and supplementary groups (SO_PEERGROUPS).
fn identity(stream: &impl AsFd, peer: &Peer) -> Identity {
    let mut gids = sys::peer_groups(stream.as_fd()).unwrap_or_else(|e| {
        log::warn!("no SO_PEERGROUPS for uid {} pid {}: {e}; deciding on the primary group", peer.uid, peer.pid);
        Vec::new()
    });
    if !gids.contains(&peer.gid) {
        gids.insert(0, peer.gid);
    }
    Identity { uid: peer.uid, user: None, groups: gids.into_iter().map(|g| (g, None)).collect() }
}

/// Sets the read timeout to what is left until `deadline`; an error once it has passed. A
/// client trickling a byte at a time gets no more time than one that sends nothing.
fn until(stream: &UnixStream, deadline: Instant) -> std::io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))
}

/// Waits until `stream` is readable, or an error once `deadline` has passed.
fn readable_before(stream: &UnixStream, deadline: Instant) -> std::io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() || !sys::wait_ready(stream.as_fd(), false, left)? {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    Ok(())
}

/// Reads the hello and any descriptors sent with it, all before `deadline`; None when the
/// peer closed without sending a byte. The client sends its hello right after its connect, so
/// it is mostly here before this thread is: asked for without waiting, waited for only when
/// it is not (no socket timeout to set and reset per connection).
fn read_hello(stream: &UnixStream, deadline: Instant) -> Result<Option<(Hello, Vec<OwnedFd>)>, String> {
    let no_hello = |e: std::io::Error| format!("no hello: {e}");
    let mut buf = [0u8; HELLO_LEN];
    let (mut got, fds, truncated) = loop {
        match sys::recv_with_fds(stream.as_fd(), &mut buf, false) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                readable_before(stream, deadline).map_err(no_hello)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            received => break received.map_err(no_hello)?,
        }
    };
    if truncated {
        return Err("more descriptors than a hand-over carries".into());
    }
    if got == 0 {
        // Closed without a word: a probe (`likwid-access doctor`), nothing to log.
        return Ok(None);
    }
    while got < HELLO_LEN {
        match sys::recv_plain(stream.as_fd(), &mut buf[got..], libc::MSG_DONTWAIT) {
            Ok(0) => return Err(format!("closed after {got} bytes of hello")),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                readable_before(stream, deadline).map_err(no_hello)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(no_hello(e)),
        }
    }
    Ok(Some((Hello::decode(&buf)?, fds)))
}

/// Serves one accepted connection to its end.
pub fn handle(service: &Service, stream: UnixStream, peer: Peer) {
    let deadline = Instant::now() + HELLO_TIMEOUT;
    let (hello, fds) = match read_hello(&stream, deadline) {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(why) => {
            service.log.warn(peer.uid, &format!("closed connection of uid {} pid {}: {why}", peer.uid, peer.pid));
            return;
        }
    };
    if !fds.is_empty() && !matches!(hello, Hello::HandOver(_)) {
        let why =
            format!("closed connection of uid {} pid {}: descriptors sent with a {hello:?} hello", peer.uid, peer.pid);
        service.log.warn(peer.uid, &why);
        return;
    }
    match hello {
        Hello::Session(numbering) => library_session(service, Arc::new(stream), &peer, numbering),
        Hello::HandOver(numbering) => hand_over(service, stream, &peer, fds, numbering),
        Hello::Admin => admin(service, stream, &peer, deadline),
    }
}

/// Why a client is turned away, logged and told.
fn refusal(service: &Service, peer: &Peer, via: &str, why: &str) -> String {
    let message = format!("likwid-access service refused uid {} pid {} ({via}): {why}", peer.uid, peer.pid);
    service.log.warn(peer.uid, &message);
    message
}

/// The effective uid of process `pid`, from the `Uid:` line of its status file.
fn effective_uid(pid: i32) -> Option<u32> {
    let status = scope::read_text(std::path::Path::new(&format!("/proc/{pid}/status"))).ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Builds the session's client from what the config grants; Err(reason) when refused.
fn admit(
    service: &Service,
    stream: &Arc<UnixStream>,
    peer: &Peer,
    numbering: Numbering,
    via: &'static str,
) -> Result<Client, String> {
    let who = identity(stream, peer);
    let loaded = service.config();
    let grant = loaded.config.decide(&who);
    let line = grant.rule.as_ref().map_or(String::new(), |r| format!(" (line {})", r.line));
    if grant.access == Access::None {
        let why = format!("{} grants no access{line}; ask the administrator", loaded.source);
        return Err(refusal(service, peer, via, &why));
    }
    let allowlist = match grant.rule.as_ref().and_then(|r| r.allowlist.as_ref()) {
        Some(path) => match loaded.allowlists.get(path) {
            Some(policy) => Some(policy.clone()),
            None => return Err(refusal(service, peer, via, &format!("allowlist {} is not loaded", path.display()))),
        },
        None => None,
    };
    let (cpuset, cgroups) = if peer.uid == 0 || !loaded.config.cpu_scope {
        // Unconfined: only the cgroup paths (for `reset job=ID`), not the set.
        (None, scope::cpuset_of(peer.pid, &service.cgroup_mounts, false).1)
    } else {
        let (set, cgroups) = scope::cpuset_of(peer.pid, &service.cgroup_mounts, true);
        let set = match set {
            Ok(set) => set.map(|s| s.into_iter().collect::<BTreeSet<u32>>()),
            Err(why) => {
                log::warn!("uid {} pid {}: cpuset unknown ({why}): every write refused", peer.uid, peer.pid);
                Some(BTreeSet::new())
            }
        };
        // The pid may have been reused since connect: the cgroup read must be the client's
        // (SO_PEERCRED's uid is the effective one; /proc/PID/status says it even for a process
        // that is not dumpable, whose /proc directory belongs to root).
        let same = effective_uid(peer.pid) == Some(peer.uid);
        (if same { set } else { Some(BTreeSet::new()) }, cgroups)
    };
    let reads = if peer.uid == 0 { Reads::Any } else { loaded.config.reads };
    Ok(Client {
        uid: peer.uid,
        pid: peer.pid,
        rights: Arc::new(Rights::new(grant.access, allowlist, cpuset, reads)),
        cgroups,
        numbering,
        lock: LockWatch::for_client(service.lock_path.clone(), peer.uid),
        stream: Some(stream.clone()),
        via,
    })
}

/// Our daemon's greeting: the (hardware thread, socket) list, or the errno and why not.
pub fn greeting(result: Result<&[(u32, u32)], &StartError>) -> Vec<u8> {
    let (errno, payload) = match result {
        Ok(cpus) => {
            let cpus: Vec<_> = cpus.iter().map(|&(t, s)| (wire::HwThread(t), wire::Socket(s))).collect();
            (0, wire::encode_cpu_list(&cpus))
        }
        Err(e) => (e.errno, e.message.clone().into_bytes()),
    };
    let mut frame = wire::Greeting::new(errno, payload.len()).record().encode().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// Mode 1: our library. The greeting is our daemon's; then records and batches.
fn library_session(service: &Service, stream: Arc<UnixStream>, peer: &Peer, numbering: Numbering) {
    let client = match admit(service, &stream, peer, numbering, "library") {
        Ok(c) => c,
        Err(why) => {
            let _ = Plain(&stream).write_all(&greeting(Err(&StartError::new(libc::EACCES, why))));
            return;
        }
    };
    // On the client's CPUs before the greeting: the client's wake-up is then a local one too.
    let mut placement = Placement::follow(peer.pid, service.home_cpus.as_ref());
    if Plain(&stream).write_all(&service.greeting).is_err() {
        return;
    }
    let session = service.core().open(client);
    serve::serve(service, session, &stream, true, &mut placement);
}

/// Whether `sock` is a connected AF_UNIX stream socket (not a listener); else why not.
fn connected_unix_stream(sock: &UnixStream) -> Result<(), String> {
    let fd = sock.as_raw_fd();
    if !matches!(getsockopt(sock, sockopt::SockType), Ok(SockType::Stream)) {
        return Err("not a stream socket".into());
    }
    if getsockname::<SockaddrStorage>(fd).ok().and_then(|a| a.family()) != Some(AddressFamily::Unix) {
        return Err("not an AF_UNIX socket".into());
    }
    if getsockopt(sock, sockopt::AcceptConn).unwrap_or(true) || getpeername::<SockaddrStorage>(fd).is_err() {
        return Err("not a connected socket".into());
    }
    Ok(())
}

/// The handed-over client's PCI numbering: the relay's claim, else the site file's or the
/// installed library's.
///
/// Trusting the relay's claim is safe. The relay runs as the client's own uid (hand_over checks),
/// and could as well have connected itself and sent any numbering in a mode 1 hello. The
/// numbering only names devices (which `PciDeviceIndex` is which unit): every device and
/// register is still checked by its type's rules and by what service.conf grants the client
/// (the same argument as for the daemon's numbering argument, src/daemon/mod.rs parse_args).
/// A wrong claim can only make the client's own tool misread its own counters.
fn handed_numbering(service: &Service, peer: &Peer, relay_peer: &Peer, claim: Option<Numbering>) -> Numbering {
    match claim {
        Some(n) => {
            log::info!(
                "client pid {} speaks LIKWID {} PCI device numbering: its relay (pid {}) found it in the client's maps",
                peer.pid,
                n.label(),
                relay_peer.pid
            );
            n
        }
        None => {
            let (n, source) = &service.fallback_numbering;
            log::info!(
                "client pid {} gets LIKWID {} PCI device numbering from {source}: its relay (pid {}) sent none",
                peer.pid,
                n.label(),
                relay_peer.pid
            );
            *n
        }
    }
}

/// Mode 2: the relay's hand-over of a LIKWID client's socket.
fn hand_over(
    service: &Service,
    mut relay: UnixStream,
    relay_peer: &Peer,
    mut fds: Vec<OwnedFd>,
    claim: Option<Numbering>,
) {
    let answer = |relay: &mut UnixStream, errno: u8| {
        let _ = Plain(relay).write_all(&[errno]);
    };
    let count = fds.len();
    let (Some(fd), 1) = (fds.pop(), count) else {
        refusal(service, relay_peer, "hand-over", &format!("{count} descriptors with the hello, want exactly 1"));
        return answer(&mut relay, libc::EINVAL as u8);
    };
    let client = Arc::new(UnixStream::from(fd));
    if let Err(why) = connected_unix_stream(&client) {
        refusal(service, relay_peer, "hand-over", &format!("the descriptor is {why}"));
        return answer(&mut relay, libc::ENOTSOCK as u8);
    }
    let peer = match peer_of(&client) {
        Ok(p) => p,
        Err(e) => {
            refusal(service, relay_peer, "hand-over", &format!("no peer credentials on the handed socket: {e}"));
            return answer(&mut relay, libc::EPROTO as u8);
        }
    };
    if peer.uid != relay_peer.uid {
        let why = format!("handed socket's peer is uid {} pid {}, not the relay's uid", peer.uid, peer.pid);
        refusal(service, relay_peer, "hand-over", &why);
        return answer(&mut relay, libc::EACCES as u8);
    }
    let numbering = handed_numbering(service, &peer, relay_peer, claim);
    let Ok(admitted) = admit(service, &client, &peer, numbering, "LIKWID") else {
        return answer(&mut relay, libc::EACCES as u8);
    };
    answer(&mut relay, 0);
    drop(relay);
    // The relay may have left a timeout on its accepted socket: a session idles as long as
    // its client likes. (Writes need none: `Plain` bounds them.)
    let _ = client.set_read_timeout(None);
    let mut placement = Placement::follow(peer.pid, service.home_cpus.as_ref());
    let session = service.core().open(admitted);
    serve::serve(service, session, &client, false, &mut placement);
}

/// Mode 3: one command from root, text lines back, the last `ok` or `error: ...`.
fn admin(service: &Service, mut stream: UnixStream, peer: &Peer, deadline: Instant) {
    let reply = |stream: &mut UnixStream, lines: &[String]| {
        let mut text = lines.join("\n");
        text.push('\n');
        let _ = Plain(stream).write_all(text.as_bytes());
    };
    // The line is read before the uid is judged: closing on unread bytes would reset the
    // connection and lose the answer.
    let mut line = Vec::new();
    let mut byte = [0u8; 256];
    loop {
        if let Err(e) = until(&stream, deadline) {
            return reply(&mut stream, &[format!("error: no command within {HELLO_TIMEOUT:?}: {e}")]);
        }
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&byte[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return reply(&mut stream, &[format!("error: no command: {e}")]),
        }
        if line.contains(&b'\n') || line.len() > admin::MAX_LINE {
            break;
        }
    }
    if peer.uid != 0 {
        refusal(service, peer, "admin", "admin commands need root");
        return reply(&mut stream, &["error: admin commands need root".into()]);
    }
    let Some(end) = line.iter().position(|b| *b == b'\n').filter(|n| *n <= admin::MAX_LINE) else {
        return reply(&mut stream, &["error: want one line of at most 4096 bytes".into()]);
    };
    let text = String::from_utf8_lossy(&line[..end]).into_owned();
    let mut lines = match admin::parse(&text) {
        Ok(Command::Status) => service.core().status(),
        Ok(Command::Reset(filter)) => service.core().reset(&filter),
        Err(why) => return reply(&mut stream, &[format!("error: {why}")]),
    };
    log::info!("admin (pid {}): {text}", peer.pid);
    lines.push("ok".into());
    reply(&mut stream, &lines);
}
