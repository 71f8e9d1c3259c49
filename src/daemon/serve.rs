//! The request loop: one 32-byte record in, one out, until EXIT, EOF or a broken channel.

use super::session::Session;
use crate::wire::{Record, RECORD_LEN, TYPE_EXIT};
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

/// Serves requests until the client ends the session, then finishes it (restoring registers
/// unless the client said EXIT).
pub fn serve(stream: &mut UnixStream, mut session: Session) -> Ended {
    let ended = loop {
        let req = match read_record(stream) {
            Ok(Some(req)) if req.kind == TYPE_EXIT => break Ended::Exit,
            Ok(Some(req)) => req,
            Ok(None) => break Ended::Eof,
            Err(e) => break Ended::Broken(e),
        };
        let reply = session.answer(&req);
        // SIGPIPE is ignored in the daemon (Rust's runtime does so for binaries), so a
        // vanished client shows up here as EPIPE.
        if let Err(e) = stream.write_all(&reply.encode()) {
            break Ended::Broken(e);
        }
    };
    session.finish(&ended);
    ended
}
