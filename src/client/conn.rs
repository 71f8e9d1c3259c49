//! One connection to a daemon we launched: request/reply with bounded waits and no SIGPIPE.

use super::handshake::{handshake, Flavor};
use super::machine::Machine;
use crate::error::{AccessError, StartError};
use crate::wire::{self, Record, RECORD_LEN};
use nix::sys::socket::{getsockopt, send, sockopt, MsgFlags};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::time::{Duration, Instant};

/// Longest wait for one reply. A register access takes microseconds; a daemon that is
/// stopped or stuck must not hang the application.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long finalize waits for the daemon to exit before it kills it.
const EXIT_GRACE: Duration = Duration::from_secs(2);

pub struct Connection {
    stream: UnixStream,
    /// The daemon we spawned; None on the node's service (src/client/service.rs).
    child: Option<Child>,
    flavor: Flavor,
    /// Set once the channel failed: later calls fail fast with the same reason.
    broken: Option<String>,
    /// A batch's request frame and its replies, kept from batch to batch: no allocation per
    /// batch once the largest has been seen.
    out: Vec<u8>,
    replies: Vec<u8>,
}

/// Sends all of `buf` with MSG_NOSIGNAL: a dead peer gives EPIPE, never SIGPIPE.
fn send_all(stream: &UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match send(stream.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => buf = &buf[n..],
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub(super) fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "no reply within the timeout".into(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
            "the daemon closed the connection".into()
        }
        _ => e.to_string(),
    }
}

impl Connection {
    /// Takes a freshly spawned daemon through the start-up handshake: its CPU list, or why
    /// it cannot serve (the daemon is reaped then).
    pub fn establish(ours: UnixStream, mut child: Child, secure: bool) -> Result<(Connection, Machine), StartError> {
        match handshake(ours, &mut child, secure) {
            Ok((stream, cpus, flavor)) => {
                let _ = stream.set_read_timeout(Some(REPLY_TIMEOUT));
                let _ = stream.set_write_timeout(Some(REPLY_TIMEOUT));
                Ok((
                    Connection {
                        stream,
                        child: Some(child),
                        flavor,
                        broken: None,
                        out: Vec::new(),
                        replies: Vec::new(),
                    },
                    cpus,
                ))
            }
            Err(e) => {
                reap(&mut child);
                Err(e)
            }
        }
    }

    /// A session with the node's service, already greeted: no process of ours behind it.
    pub fn to_service(stream: UnixStream, capabilities: u64) -> Connection {
        // The connect and the greeting left both bounds at START_TIMEOUT: two system calls
        // on every connect to set them again only where the reply bound differs.
        if REPLY_TIMEOUT != super::handshake::START_TIMEOUT {
            let _ = stream.set_read_timeout(Some(REPLY_TIMEOUT));
            let _ = stream.set_write_timeout(Some(REPLY_TIMEOUT));
        }
        Connection {
            stream,
            child: None,
            flavor: Flavor::Ours { capabilities },
            broken: None,
            out: Vec::new(),
            replies: Vec::new(),
        }
    }

    /// The process serving this connection: the daemon we spawned, or for LIKWID's daemon,
    /// which detaches, and for the service, the listener on its socket (SO_PEERCRED).
    pub fn pid(&self) -> u32 {
        match (&self.child, self.flavor) {
            (Some(child), Flavor::Ours { .. }) => child.id(),
            _ => getsockopt(&self.stream, sockopt::PeerCredentials).map_or(0, |c| c.pid() as u32),
        }
    }

    /// One request, one reply.
    pub fn round_trip(&mut self, req: &Record) -> Result<Record, AccessError> {
        if let Some(why) = &self.broken {
            return Err(AccessError::Channel(why.clone()));
        }
        let result = send_all(&self.stream, &req.encode()).and_then(|()| {
            let mut buf = [0u8; RECORD_LEN];
            (&self.stream).read_exact(&mut buf)?;
            Ok(Record::decode(&buf))
        });
        match result {
            Ok(reply) if reply.cpu == req.cpu && reply.reg == req.reg && reply.kind == req.kind => Ok(reply),
            Ok(_) => Err(self.fail("reply does not match the request".into())),
            Err(e) => Err(self.fail(describe(&e))),
        }
    }

    /// Whether the daemon executes batches (ours does; LIKWID's does not).
    pub fn batches(&self) -> bool {
        matches!(self.flavor, Flavor::Ours { capabilities } if capabilities & wire::CAP_BATCH != 0)
    }

    /// Room for the next batch's `count` request records (the header before them is written
    /// by `send_batch`): the caller encodes its requests into the first records and calls
    /// `send_batch` with how many it wrote. The frame keeps its length from batch to batch, so
    /// a batch no larger than the last zeroes nothing, and the records are written without a
    /// capacity check each (a `Vec` append per record cost about 6 instructions, callgrind).
    pub fn batch_frame(&mut self, count: usize) -> &mut [u8] {
        self.out.resize((1 + count) * RECORD_LEN, 0);
        &mut self.out[RECORD_LEN..]
    }

    /// Sends the first `sent` records written into `batch_frame` in one frame and returns
    /// their replies, in request order, each checked to answer its request (cpu, register,
    /// type).
    pub fn send_batch(&mut self, sent: usize) -> Result<&[u8], AccessError> {
        if let Some(why) = &self.broken {
            return Err(AccessError::Channel(why.clone()));
        }
        debug_assert!((1 + sent) * RECORD_LEN <= self.out.len(), "more records sent than written");
        self.out.truncate((1 + sent) * RECORD_LEN);
        let len = self.out.len() - RECORD_LEN;
        let count = u32::try_from(len / RECORD_LEN).ok().filter(|n| *n <= wire::MAX_BATCH);
        let count = count.ok_or_else(|| {
            AccessError::Channel(format!("batch of {} exceeds {}", len / RECORD_LEN, wire::MAX_BATCH))
        })?;
        self.out[..RECORD_LEN].copy_from_slice(&wire::batch_header(count, wire::ERR_OPENFAIL).encode());
        let replies = &mut self.replies;
        let stream = &self.stream;
        let result = send_all(stream, &self.out).and_then(|()| {
            // The reply header, then the replies. Our daemon sends the header with the first
            // replies in one piece: whatever has arrived is read with the header (at least
            // the header), not the header alone and then the rest (a system call per batch
            // less). Every byte is overwritten by the reads; resize only zeroes what it adds.
            replies.resize(RECORD_LEN + len, 0);
            let mut got = 0;
            while got < RECORD_LEN {
                match (&*stream).read(&mut replies[got..]) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let header = Record::decode(replies[..RECORD_LEN].try_into().expect("a record"));
            if header.kind == wire::Kind::Batch.code()
                && header.cpu == 0
                && count > 0
                && header.errorcode == wire::ERR_RWFAIL
                && got == RECORD_LEN
            {
                // The daemon had no memory for the batch and read past it: the channel is fine
                // (nothing follows that header; anything that did is caught below).
                return Ok(false);
            }
            if header.kind != wire::Kind::Batch.code() || header.cpu != count || header.errorcode != wire::ERR_NOERROR {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "batch reply header does not match"));
            }
            (&*stream).read_exact(&mut replies[got..])?;
            Ok(true)
        });
        // A reply answers its request when cpu and register (bytes 0..8) and type (20..24)
        // are the request's: compared as two integers (as slices: about 10 instructions per
        // record, callgrind).
        let answers = |(a, q): (&[u8], &[u8])| {
            let word = |b: &[u8]| u64::from_ne_bytes(b[..8].try_into().expect("8 bytes"));
            let kind = |b: &[u8]| u32::from_ne_bytes(b[20..24].try_into().expect("4 bytes"));
            word(a) == word(q) && kind(a) == kind(q)
        };
        match result {
            Ok(false) => Err(AccessError::ReadWrite(libc::ENOMEM)),
            Ok(true)
                if self.replies[RECORD_LEN..]
                    .chunks_exact(RECORD_LEN)
                    .zip(self.out[RECORD_LEN..].chunks_exact(RECORD_LEN))
                    .all(answers) =>
            {
                Ok(&self.replies[RECORD_LEN..])
            }
            Ok(true) => Err(self.fail("batch replies do not match the requests".into())),
            Err(e) => Err(self.fail(describe(&e))),
        }
    }

    fn fail(&mut self, why: String) -> AccessError {
        let pid = self.pid();
        let exited = self.child.as_mut().map(|c| c.try_wait());
        let why = match (self.flavor, exited) {
            (Flavor::Ours { .. }, None) => format!("likwid-access service (pid {pid}): {why}"),
            (Flavor::Ours { .. }, Some(Ok(Some(status)))) => {
                format!("likwid-accessD (pid {pid}) exited ({status}): {why}")
            }
            (Flavor::Ours { .. }, _) => format!("likwid-accessD (pid {pid}): {why}"),
            (Flavor::Likwid, _) => format!("LIKWID's likwid-accessD (pid {pid}): {why}"),
        };
        // The stream is out of step now; nothing on it can be trusted again.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.broken = Some(why.clone());
        AccessError::Channel(why)
    }

    /// Ends the session: EXIT (LIKWID keeps the registers as programmed), then reap.
    pub fn close(mut self) {
        if self.broken.is_none() {
            let exit = Record::request(wire::Kind::Exit, 0, wire::DeviceIndex::MSR.0, 0, 0);
            let _ = send_all(&self.stream, &exit.encode());
        }
        drop(self.stream);
        if let Some(child) = self.child.as_mut() {
            reap(child);
        }
    }

    /// After fork(): the daemon belongs to the parent. Close our copy of the channel and
    /// forget the child without waiting for it (it is not ours to reap).
    pub fn abandon(self) {
        drop(self.stream);
        if let Some(child) = self.child {
            std::mem::forget(child);
        }
    }
}

/// The channel's descriptor: LIKWID 3's socket_fd names a session by it.
impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }
}

/// Waits for the daemon to exit, killing it after a grace period; never blocks for long.
pub fn reap(child: &mut Child) {
    let deadline = Instant::now() + EXIT_GRACE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            // ECHILD: the application reaps children itself (SIGCHLD ignored); nothing to do.
            Err(_) => return,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}
