//! The request loop: one 32-byte record in, one out, until EXIT, EOF or a broken channel.

use super::session::Session;
use crate::wire::{self, Kind, Record, RECORD_LEN};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

/// Who is on the other end, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
}

/// Why serving stopped.
#[derive(Debug)]
pub enum Ended {
    /// The client said EXIT: keep what it programmed (LIKWID's tools rely on that).
    Exit,
    /// The client went away without EXIT.
    Eof,
    Broken(io::Error),
}

/// Reads one record; `Ok(None)` on a clean EOF before its first byte. Inlined into each serve
/// loop (the service's called it: 36 instructions more per single read, callgrind).
#[inline]
pub(crate) fn read_record(stream: &mut impl Read) -> io::Result<Option<Record>> {
    let mut buf = [0u8; RECORD_LEN];
    let mut got = 0;
    while got < RECORD_LEN {
        match stream.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(Record::decode(&buf)))
}

/// Requests executed and answered at a time: what a batch needs besides its request bytes
/// stays small, whatever its size.
const CHUNK: usize = 1024;

/// Reads and discards `len` bytes, keeping the channel in step without a buffer for them.
pub(crate) fn drain(stream: &mut impl Read, mut len: usize) -> io::Result<()> {
    let mut scrap = [0u8; 4096];
    while len > 0 {
        let n = len.min(scrap.len());
        stream.read_exact(&mut scrap[..n])?;
        len -= n;
    }
    Ok(())
}

/// Reads the `header.cpu` requests of a batch into `body` (kept by the caller, so a session
/// allocates for its largest batch once), then answers them in order, a chunk at a time.
/// Replies start only once every request is read: the client sends the whole batch before it
/// reads, so replying earlier could fill both socket buffers and stall both sides.
fn serve_batch(stream: &mut UnixStream, session: &mut Session, header: &Record, body: &mut Vec<u8>) -> io::Result<()> {
    if header.cpu > wire::MAX_BATCH {
        // The count cannot be trusted, so neither can anything after it: end the session.
        log::warn!("batch of {} requests exceeds {}; closing the session", header.cpu, wire::MAX_BATCH);
        let _ = stream.write_all(&wire::batch_header(0, wire::ERR_UNKNOWN).encode());
        return Err(io::Error::new(io::ErrorKind::InvalidData, "oversized batch"));
    }
    let len = header.cpu as usize * RECORD_LEN;
    // The reply header goes in front of the records, so it leaves with the first chunk of
    // replies in one send: sent on its own first, it woke the client for 32 bytes, and the
    // client then blocked again for the replies (a wake-up and two system calls per batch).
    let frame = RECORD_LEN + len;
    if body.capacity() < frame && body.try_reserve_exact(frame - body.len()).is_err() {
        // The user may lower the daemon's RLIMIT_AS: refuse this batch, not the session.
        log::error!("no memory for a batch of {} requests ({len} bytes); refusing it", header.cpu);
        drain(stream, len)?;
        return stream.write_all(&wire::batch_header(0, wire::ERR_RWFAIL).encode());
    }
    body.resize(frame, 0);
    stream.read_exact(&mut body[RECORD_LEN..])?;
    body[..RECORD_LEN].copy_from_slice(&wire::batch_header(header.cpu, wire::ERR_NOERROR).encode());
    // Each reply overwrites its own request (both are one record): no reply buffer to clear
    // or fill per chunk, and no vector of decoded requests.
    let mut sent = 0;
    for first in (RECORD_LEN..frame).step_by(CHUNK * RECORD_LEN) {
        let end = frame.min(first + CHUNK * RECORD_LEN);
        session.answer_batch_in_place(&mut body[first..end]);
        stream.write_all(&body[sent..end])?;
        sent = end;
    }
    if sent == 0 {
        // An empty batch: its header alone.
        stream.write_all(&body[..RECORD_LEN])?;
    }
    Ok(())
}

/// Serves requests until the client ends the session, then finishes it (restoring registers
/// unless the client said EXIT). `extensions` (our batches) only on our private channel:
/// LIKWID clients never see them.
pub fn serve(stream: &mut UnixStream, mut session: Session, extensions: bool) -> Ended {
    let mut batch_body = Vec::new();
    let ended = loop {
        let req = match read_record(stream) {
            Ok(Some(req)) if req.kind == Kind::Exit.code() => break Ended::Exit,
            Ok(Some(req)) => req,
            Ok(None) => break Ended::Eof,
            Err(e) => break Ended::Broken(e),
        };
        // SIGPIPE is ignored in the daemon (Rust's runtime does so for binaries), so a
        // vanished client shows up here as EPIPE.
        let sent = if extensions && req.kind == Kind::Batch.code() {
            serve_batch(stream, &mut session, &req, &mut batch_body)
        } else {
            stream.write_all(&session.answer(&req).encode())
        };
        if let Err(e) = sent {
            break Ended::Broken(e);
        }
    };
    session.finish(&ended);
    ended
}
