//! The record loop of one session: LIKWID 5 records (and, for our library, batches) in, replies
//! out; reads answered on the session's own engine, writes under the core's lock, socket I/O
//! outside it.

use super::conn::WRITE_TIMEOUT;
use super::core::End;
use super::placement::Placement;
use super::session::Session;
use super::Service;
use crate::daemon::{drain, read_record};
use crate::wire::{self, Record, RECORD_LEN};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// Requests answered per turn at the core's lock: bounds how long a large batch holds up others.
const TURN: usize = 64;

/// A connection's socket, read and written with plain system calls (`sys::recv_plain`): the
/// service has many threads, and glibc's wrappers then cost a cancellation bracket per call.
/// Reads block as long as the client likes (a session may idle); a write that finds no room
/// waits at most WRITE_TIMEOUT for it, then fails (TimedOut): a client that does not read its
/// replies ends its session. No socket timeout is set, so none is changed per connection.
pub struct Plain<'a>(pub &'a UnixStream);

impl Read for Plain<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::sys::recv_plain(self.0.as_fd(), buf, 0)
    }
}

impl Plain<'_> {
    /// What `write_all` could not send at once.
    #[cold]
    #[inline(never)]
    fn write_rest(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The socket was full: waits for room, sending again, until WRITE_TIMEOUT has passed.
    #[cold]
    #[inline(never)]
    fn write_when_room(&mut self, buf: &[u8]) -> io::Result<usize> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !crate::sys::wait_ready(self.0.as_fd(), true, left)? {
                return Err(io::ErrorKind::TimedOut.into());
            }
            match crate::sys::send_plain(self.0.as_fd(), buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                sent => return sent,
            }
        }
    }
}

impl Write for Plain<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match crate::sys::send_plain(self.0.as_fd(), buf) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => self.write_when_room(buf),
            sent => sent,
        }
    }

    // In the serve loop itself: a reply that fits at once (all but a stalled client's) is one
    // system call; the rest, waiting for room included, is out of line. Called (std's loop, or
    // this one out of line) it cost 28-50 instructions more per single read (callgrind).
    #[inline(always)]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match crate::sys::send_plain(self.0.as_fd(), buf) {
            Ok(n) if n == buf.len() => Ok(()),
            Ok(n) => self.write_rest(&buf[n..]),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) || e.kind() == io::ErrorKind::Interrupted => {
                self.write_rest(buf)
            }
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A batch (our extension): read whole (the client sends it all before it reads), then
/// answered a turn at a time, each turn's replies sent after the core's lock (if a write took
/// it) is released. Ok(false) when the session was ended meanwhile.
fn serve_batch(service: &Service, session: &mut Session, stream: &mut Plain, header: &Record) -> io::Result<bool> {
    let id = session.id;
    if header.cpu > wire::MAX_BATCH {
        log::warn!("session {id}: batch of {} requests exceeds {}; closing", header.cpu, wire::MAX_BATCH);
        let _ = stream.write_all(&wire::batch_header(0, wire::ERR_UNKNOWN).encode());
        return Err(io::Error::new(io::ErrorKind::InvalidData, "oversized batch"));
    }
    let len = header.cpu as usize * RECORD_LEN;
    let mut body = Vec::new();
    if body.try_reserve_exact(len).is_err() {
        // Memory is short: refuse this batch, not the session (as the daemon does).
        log::error!("session {id}: no memory for a batch of {} requests; refusing it", header.cpu);
        drain(stream, len)?;
        stream.write_all(&wire::batch_header(0, wire::ERR_RWFAIL).encode())?;
        return Ok(true);
    }
    body.resize(len, 0);
    stream.read_exact(&mut body)?;
    stream.write_all(&wire::batch_header(header.cpu, wire::ERR_NOERROR).encode())?;
    for turn in body.chunks(TURN * RECORD_LEN) {
        let Some(replies) = session.answer_turn(&service.core, &wire::decode_records(turn)) else {
            return Ok(false);
        };
        stream.write_all(&wire::encode_records(&replies))?;
    }
    Ok(true)
}

/// Serves `session` until EXIT, EOF, a broken channel or the session's end by an admin,
/// then ends it (restoring unless the client said EXIT). The thread follows the client's
/// CPUs as `placement` finds them.
pub fn serve(
    service: &Service,
    mut session: Session,
    stream: &UnixStream,
    extensions: bool,
    placement: &mut Placement,
) {
    let id = session.id;
    let stream = &mut Plain(stream);
    let mut announced = false;
    let end = loop {
        let req = match read_record(stream) {
            Ok(Some(req)) if req.kind == wire::Kind::Exit.code() => break End::Exit,
            Ok(Some(req)) => req,
            Ok(None) => break End::Restore,
            Err(e) => {
                log::info!("session {id}: channel broke: {e}");
                break End::Restore;
            }
        };
        let sent = if extensions && req.kind == wire::Kind::Batch.code() {
            serve_batch(service, &mut session, stream, &req)
        } else {
            // A write's hold on the core's lock ends before the reply is sent: a client that
            // does not read its replies stalls only itself.
            let reply = session.answer(&service.core, &req);
            match reply {
                Some(reply) => stream.write_all(&reply.encode()).map(|()| true),
                None => Ok(false),
            }
        };
        match sent {
            Ok(true) if !announced => {
                service.core().announce(id);
                announced = true;
            }
            Ok(true) => placement.recheck(),
            // Ended by an admin or SIGTERM: already restored.
            Ok(false) => return,
            Err(e) => {
                log::info!("session {id}: channel broke: {e}");
                break End::Restore;
            }
        }
    };
    service.core().end(id, end);
}
