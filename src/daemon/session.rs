//! One client's session: requests go through the engine; the first write to each register
//! journals its original value so a client that vanishes without EXIT (killed, crashed)
//! leaves the machine as it found it. A clean EXIT keeps what LIKWID's tools programmed.

use super::audit::Audit;
use super::serve::{Ended, Peer};
use crate::engine::Engine;
use crate::error::AccessError;
use crate::wire::{self, Kind, Record};
use std::collections::HashSet;
use std::io::Write;

/// Registers one session may have journaled: bounds the daemon's memory whatever a client
/// sends (a register costs 24 bytes here).
const JOURNAL_LIMIT: usize = 1 << 20;

#[derive(Default)]
struct Journal {
    seen: HashSet<(u32, i32, u32)>,
    /// Original values in first-write order.
    originals: Vec<(u32, i32, u32, u64)>,
}

pub struct Session<'e> {
    engine: &'e mut Engine,
    audit: Audit,
    journal: Journal,
    trace: Option<Box<dyn Write>>,
}

impl<'e> Session<'e> {
    pub fn new(engine: &'e mut Engine, peer: Peer, trace: Option<Box<dyn Write>>) -> Session<'e> {
        Session { engine, audit: Audit::new(peer), journal: Journal::default(), trace }
    }

    fn write(&mut self, req: &Record) -> Result<u64, AccessError> {
        let key = (req.cpu, req.device, req.reg);
        let original = if self.journal.seen.contains(&key) {
            None
        } else if self.journal.seen.len() >= JOURNAL_LIMIT {
            log::error!("session wrote {JOURNAL_LIMIT} distinct registers; refusing more");
            return Err(AccessError::ReadWrite(libc::ENOMEM));
        } else {
            // A register that cannot be read (write-only commands) cannot be restored either.
            self.engine.read(req.cpu, req.device, req.reg).ok()
        };
        self.engine.write(req.cpu, req.device, req.reg, req.data)?;
        if let Some(old) = original {
            self.journal.seen.insert(key);
            self.journal.originals.push((req.cpu, req.device, req.reg, old));
        }
        Ok(0)
    }

    /// Executes one request and builds its reply.
    pub fn answer(&mut self, req: &Record) -> Record {
        let result = match Kind::from_wire(req.kind) {
            Some(Kind::Read) => self.engine.read(req.cpu, req.device, req.reg),
            Some(Kind::Write) => self.write(req),
            Some(Kind::Check) => self.engine.check(req.cpu, req.device).map(|_| 0),
            Some(Kind::Exit) | None => Err(AccessError::UnknownRequest),
        };
        let reply = match &result {
            Ok(data) => req.reply(*data, wire::ERR_NOERROR),
            Err(e) => {
                self.audit.refused(req, e);
                req.reply(0, e.wire_code())
            }
        };
        if let Some(trace) = self.trace.as_mut() {
            let op = match Kind::from_wire(req.kind) {
                Some(Kind::Read) => "read",
                Some(Kind::Write) => "write",
                Some(Kind::Check) => "check",
                _ => "unknown",
            };
            let data = if req.kind == wire::TYPE_WRITE { req.data } else { reply.data };
            let code = wire::code_name(reply.errorcode);
            let _ = writeln!(trace, "{op} {} {} {:#x} {data:#x} {code}", req.cpu, req.device, req.reg);
        }
        reply
    }

    /// Ends the session: without EXIT, every journaled register gets its original value
    /// back (each on its own; failures are logged, the rest still restored).
    pub fn finish(mut self, ended: &Ended) -> usize {
        self.audit.summary();
        if matches!(ended, Ended::Exit) {
            return 0;
        }
        let mut restored = 0;
        for &(cpu, device, reg, old) in self.journal.originals.iter().rev() {
            match self.engine.restore(cpu, device, reg, old) {
                Ok(()) => restored += 1,
                Err(e) => log::error!("restore of cpu={cpu} device={device} reg={reg:#x} to {old:#x} failed: {e}"),
            }
        }
        if restored > 0 {
            log::info!("client left without EXIT; restored {restored} registers");
        }
        restored
    }
}
