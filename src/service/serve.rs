//! The record loop of one session: LIKWID 5 records (and, for our library, batches) in, replies
//! out, every request answered by the core under its lock, socket I/O outside it.

use super::core::{End, SessionId};
use super::Service;
use crate::wire::{self, Record, RECORD_LEN};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

/// Requests answered per turn at the core's lock: bounds how long a large batch holds up others.
const TURN: usize = 64;

/// Reads one record; `Ok(None)` on a clean EOF before its first byte.
fn read_record(stream: &mut UnixStream) -> io::Result<Option<Record>> {
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

/// Answers `reqs` in turns; None when the session was ended meanwhile.
fn answer_all(service: &Service, id: SessionId, reqs: &[Record]) -> Option<Vec<Record>> {
    let mut replies = Vec::with_capacity(reqs.len());
    for turn in reqs.chunks(TURN) {
        let mut core = service.core();
        for req in turn {
            replies.push(core.answer(id, req)?);
        }
    }
    Some(replies)
}

/// A batch (our extension): read it whole, then answer, as the daemon does.
fn serve_batch(service: &Service, id: SessionId, stream: &mut UnixStream, header: &Record) -> io::Result<bool> {
    if header.cpu > wire::MAX_BATCH {
        log::warn!("session {id}: batch of {} requests exceeds {}; closing", header.cpu, wire::MAX_BATCH);
        let _ = stream.write_all(&wire::batch_header(0, wire::ERR_UNKNOWN).encode());
        return Err(io::Error::new(io::ErrorKind::InvalidData, "oversized batch"));
    }
    let mut body = vec![0u8; header.cpu as usize * RECORD_LEN];
    stream.read_exact(&mut body)?;
    let Some(replies) = answer_all(service, id, &wire::decode_records(&body)) else { return Ok(false) };
    let mut out = wire::batch_header(header.cpu, wire::ERR_NOERROR).encode().to_vec();
    out.extend_from_slice(&wire::encode_records(&replies));
    stream.write_all(&out)?;
    Ok(true)
}

/// Serves session `id` until EXIT, EOF, a broken channel or the session's end by an admin,
/// then ends it (restoring unless the client said EXIT).
pub fn serve(service: &Service, id: SessionId, stream: &mut UnixStream, extensions: bool) {
    let end = loop {
        let req = match read_record(stream) {
            Ok(Some(req)) if req.kind == wire::TYPE_EXIT => break End::Exit,
            Ok(Some(req)) => req,
            Ok(None) => break End::Restore,
            Err(e) => {
                log::info!("session {id}: channel broke: {e}");
                break End::Restore;
            }
        };
        let sent = if extensions && req.kind == wire::TYPE_BATCH {
            serve_batch(service, id, stream, &req)
        } else {
            // The core's lock is released before the reply is sent: a client that does not
            // read its replies stalls only itself.
            let reply = service.core().answer(id, &req);
            match reply {
                Some(reply) => stream.write_all(&reply.encode()).map(|()| true),
                None => Ok(false),
            }
        };
        match sent {
            Ok(true) => {}
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
