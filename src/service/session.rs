//! One session as its connection's thread serves it: an engine of its own on the service's
//! open machine (its client's PCI numbering and lock watch, its own remembered decisions), so
//! reads and checks run without the core's lock, which only writes (and refusals, for the log)
//! take. A read changes nothing another session could see: it needs no order against them.

use super::config::Reads;
use super::core::{self, Core, Rights, SessionId};
use crate::engine::Engine;
use crate::error::AccessError;
use crate::wire::{self, Kind, Record};
use std::sync::{Arc, Mutex, MutexGuard};

pub struct Session {
    pub id: SessionId,
    engine: Engine,
    rights: Arc<Rights>,
    /// Whether a read needs nothing but the engine's own checks: no cpuset to keep reads in
    /// (`reads any`, or an unconfined client) and no rule allowlist.
    engine_decides_reads: bool,
    /// The current request's hardware threads (kept: no allocation per request).
    targets: Vec<u32>,
}

type Outcome = Result<u64, (AccessError, String)>;

impl Session {
    pub(super) fn new(id: SessionId, engine: Engine, rights: &Arc<Rights>) -> Session {
        let engine_decides_reads =
            (rights.reads == Reads::Any || rights.cpuset.is_none()) && rights.allowlist.is_none();
        Session { id, engine, rights: rights.clone(), engine_decides_reads, targets: Vec::new() }
    }

    /// Answers one request; None when the session has ended (an admin reset, SIGTERM): the
    /// caller closes the connection.
    #[inline]
    pub fn answer(&mut self, core: &Mutex<Core>, req: &Record) -> Option<Record> {
        // A read the engine alone decides, as the daemon's (src/daemon/session.rs, answer):
        // inlined into the serve loop, everything else is not.
        if req.kind == Kind::Read.code() && self.engine_decides_reads && !self.rights.ended() {
            let result = self.engine.read(req.cpu, req.device, req.reg).map_err(|e| (e, String::new()));
            return Some(self.reply(core, &mut None, req, result));
        }
        self.answer_holding(core, &mut None, req)
    }

    /// Answers a turn of a batch. The core's lock, once a write of the turn took it, is kept
    /// to the turn's end (one lock per turn of writes, as a LIKWID group's set-up sends them).
    pub fn answer_turn(&mut self, core: &Mutex<Core>, reqs: &[Record]) -> Option<Vec<Record>> {
        let mut held = None;
        reqs.iter().map(|req| self.answer_holding(core, &mut held, req)).collect()
    }

    #[inline(never)]
    fn answer_holding<'c>(
        &mut self,
        core: &'c Mutex<Core>,
        held: &mut Option<MutexGuard<'c, Core>>,
        req: &Record,
    ) -> Option<Record> {
        if self.rights.ended() {
            return None;
        }
        let result = match Kind::from_code(req.kind) {
            Some(Kind::Read) => self.read(req),
            Some(Kind::Check) => self.engine.check(req.cpu, req.device).map(|()| 0).map_err(|e| (e, String::new())),
            Some(Kind::Write) => {
                self.find_targets(req);
                let core = held.get_or_insert_with(|| core::lock(core));
                core.write(self.id, &mut self.engine, req, &self.targets)?
            }
            Some(Kind::Exit | Kind::Hello | Kind::Batch) | None => Err((AccessError::UnknownRequest, String::new())),
        };
        Some(self.reply(core, held, req, result))
    }

    /// The reply to `req`; a refusal is counted and logged under the core's lock.
    #[inline]
    fn reply<'c>(
        &self,
        core: &'c Mutex<Core>,
        held: &mut Option<MutexGuard<'c, Core>>,
        req: &Record,
        result: Outcome,
    ) -> Record {
        match result {
            Ok(data) => req.reply(data, wire::ERR_NOERROR),
            Err((e, why)) => self.refused(core, held, req, e, &why),
        }
    }

    #[cold]
    fn refused<'c>(
        &self,
        core: &'c Mutex<Core>,
        held: &mut Option<MutexGuard<'c, Core>>,
        req: &Record,
        e: AccessError,
        why: &str,
    ) -> Record {
        held.get_or_insert_with(|| core::lock(core)).refused(self.id, req, &e, why);
        req.reply(0, e.wire_code())
    }

    /// The hardware threads a request touches: the CPU for an MSR, every CPU of the socket for
    /// a socket's device (uncore is shared by the whole socket).
    fn find_targets(&mut self, req: &Record) {
        self.targets.clear();
        if req.device == wire::MSR_DEV {
            self.targets.push(req.cpu);
        } else {
            self.targets.extend(self.engine.sockets().iter().filter(|(_, s)| *s == req.cpu).map(|(c, _)| *c));
        }
    }

    /// A read: the client's scope (`reads own`), the rule's allowlist, then the engine's lock,
    /// bounds and policy.
    fn read(&mut self, req: &Record) -> Outcome {
        let denied = |why: &str| (AccessError::Denied { reg: req.reg, write: false }, why.to_string());
        let msr = req.device == wire::MSR_DEV;
        if self.rights.reads == Reads::Own && self.rights.cpuset.is_some() {
            self.find_targets(req);
            if !self.rights.in_scope(&self.targets, false) {
                return Err(denied("outside the client's cpuset (service.conf: reads own)"));
            }
        }
        if msr && self.rights.allowlist.as_ref().is_some_and(|p| !p.may_read(req.reg)) {
            return Err(denied("not in the rule's allowlist"));
        }
        self.engine.read(req.cpu, req.device, req.reg).map_err(|e| (e, String::new()))
    }
}
