//! The request loop: one 32-byte record in, one out, until EXIT, EOF or a broken channel.

use crate::engine::{Engine, Op};
use crate::error::AccessError;
use crate::wire::{Kind, Record, ERR_NOERROR, ERR_UNKNOWN, RECORD_LEN};
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

fn audit(peer: &Peer, req: &Record, err: &AccessError) {
    let what = if req.kind == crate::wire::TYPE_WRITE {
        "write"
    } else {
        "read"
    };
    match err {
        AccessError::Denied { .. } => log::warn!(
            "denied {what}: uid={} pid={} cpu={} device={} reg={:#x}",
            peer.uid,
            peer.pid,
            req.cpu,
            req.device,
            req.reg
        ),
        AccessError::NoDevice => log::warn!(
            "no such cpu or device in {what}: uid={} pid={} cpu={} device={} reg={:#x}",
            peer.uid,
            peer.pid,
            req.cpu,
            req.device,
            req.reg
        ),
        AccessError::Locked => log::info!(
            "refused {what} while locked: uid={} cpu={}",
            peer.uid,
            req.cpu
        ),
        other => log::error!(
            "{what} failed: uid={} pid={} cpu={} device={} reg={:#x}: {other}",
            peer.uid,
            peer.pid,
            req.cpu,
            req.device,
            req.reg
        ),
    }
}

/// Executes one request through the engine and builds its reply.
pub fn answer(engine: &mut Engine, peer: &Peer, req: &Record) -> Record {
    let result = match Kind::from_wire(req.kind) {
        Some(Kind::Read) => engine.execute(req.cpu, req.device, req.reg, Op::Read),
        Some(Kind::Write) => engine.execute(req.cpu, req.device, req.reg, Op::Write(req.data)),
        Some(Kind::Check) => engine.check(req.cpu, req.device).map(|_| 0),
        Some(Kind::Exit) | None => {
            log::warn!(
                "unknown request type {} from uid={} pid={}",
                req.kind,
                peer.uid,
                peer.pid
            );
            return req.reply(0, ERR_UNKNOWN);
        }
    };
    log::debug!(
        "uid={} cpu={} dev={} reg={:#x} type={} data={:#x} -> {:?}",
        peer.uid,
        req.cpu,
        req.device,
        req.reg,
        req.kind,
        req.data,
        result
    );
    match result {
        Ok(data) => req.reply(data, ERR_NOERROR),
        Err(e) => {
            audit(peer, req, &e);
            req.reply(0, e.wire_code())
        }
    }
}

/// Serves requests until the client ends the session.
pub fn serve(stream: &mut UnixStream, engine: &mut Engine, peer: &Peer) -> Ended {
    loop {
        let req = match read_record(stream) {
            Ok(Some(req)) => req,
            Ok(None) => return Ended::Eof,
            Err(e) => return Ended::Broken(e),
        };
        if req.kind == crate::wire::TYPE_EXIT {
            return Ended::Exit;
        }
        let reply = answer(engine, peer, &req);
        // SIGPIPE is ignored in the daemon (Rust's runtime does so for binaries), so a
        // vanished client shows up here as EPIPE.
        if let Err(e) = stream.write_all(&reply.encode()) {
            return Ended::Broken(e);
        }
    }
}
