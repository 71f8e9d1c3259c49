//! One connection to a daemon we launched: request/reply with bounded waits and no SIGPIPE.

use crate::error::{AccessError, StartError};
use crate::wire::{self, Record, RECORD_LEN};
use nix::sys::socket::{send, MsgFlags};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::time::{Duration, Instant};

/// Longest wait for one reply. A register access takes microseconds; a daemon that is
/// stopped or stuck must not hang the application.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the daemon's greeting after spawn.
pub const GREETING_TIMEOUT: Duration = Duration::from_secs(10);
/// How long finalize waits for the daemon to exit before it kills it.
const EXIT_GRACE: Duration = Duration::from_secs(2);

pub struct Connection {
    stream: UnixStream,
    child: Child,
    /// Set once the channel failed: later calls fail fast with the same reason.
    broken: Option<String>,
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

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "no reply within the timeout".into(),
        io::ErrorKind::UnexpectedEof => "the daemon closed the connection".into(),
        _ => e.to_string(),
    }
}

impl Connection {
    /// Takes a freshly spawned daemon and reads its greeting: the CPU list, or why it cannot serve.
    pub fn establish(stream: UnixStream, mut child: Child) -> Result<(Connection, Vec<u32>), StartError> {
        let greeting = read_greeting(&stream);
        match greeting {
            Ok(cpus) => {
                let _ = stream.set_read_timeout(Some(REPLY_TIMEOUT));
                let _ = stream.set_write_timeout(Some(REPLY_TIMEOUT));
                Ok((Connection { stream, child, broken: None }, cpus))
            }
            Err(e) => {
                drop(stream);
                reap(&mut child);
                Err(e)
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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

    fn fail(&mut self, why: String) -> AccessError {
        let why = match self.child.try_wait() {
            Ok(Some(status)) => format!("likwid-accessD (pid {}) exited ({status}): {why}", self.child.id()),
            _ => format!("likwid-accessD (pid {}): {why}", self.child.id()),
        };
        eprintln!("likwid-access: {why}");
        // The stream is out of step now; nothing on it can be trusted again.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.broken = Some(why.clone());
        AccessError::Channel(why)
    }

    /// Ends the session: EXIT (LIKWID keeps the registers as programmed), then reap.
    pub fn close(mut self) {
        if self.broken.is_none() {
            let exit = Record::request(wire::TYPE_EXIT, 0, wire::MSR_DEV, 0, 0);
            let _ = send_all(&self.stream, &exit.encode());
        }
        drop(self.stream);
        reap(&mut self.child);
    }

    /// After fork(): the daemon belongs to the parent. Close our copy of the channel and
    /// forget the child without waiting for it (it is not ours to reap).
    pub fn abandon(self) {
        drop(self.stream);
        std::mem::forget(self.child);
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

fn read_greeting(stream: &UnixStream) -> Result<Vec<u32>, StartError> {
    let fail = |why: String| StartError::new(libc::EPROTO, format!("likwid-accessD did not start: {why}"));
    stream.set_read_timeout(Some(GREETING_TIMEOUT)).map_err(|e| fail(e.to_string()))?;
    let mut buf = [0u8; RECORD_LEN];
    (&*stream).read_exact(&mut buf).map_err(|e| fail(describe(&e)))?;
    let hello = Record::decode(&buf);
    if hello.kind != wire::TYPE_HELLO || hello.reg != wire::PROTOCOL_VERSION {
        return Err(fail(format!("unexpected greeting (type {:#x}, version {})", hello.kind, hello.reg)));
    }
    if hello.cpu > wire::MAX_GREETING_PAYLOAD {
        return Err(fail(format!("greeting payload of {} bytes is too large", hello.cpu)));
    }
    let mut payload = vec![0u8; hello.cpu as usize];
    (&*stream).read_exact(&mut payload).map_err(|e| fail(describe(&e)))?;
    if hello.errorcode != 0 {
        return Err(StartError::new(hello.errorcode, String::from_utf8_lossy(&payload).into_owned()));
    }
    wire::decode_cpu_list(&payload).ok_or_else(|| fail("malformed CPU list".into()))
}
