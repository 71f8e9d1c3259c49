//! One client's session: requests go through the engine; the first write to each register
//! journals its original value so a client that vanishes without EXIT (killed, crashed)
//! leaves the machine as it found it. A clean EXIT keeps what LIKWID's tools programmed.

use super::audit::Audit;
use super::serve::{Ended, Peer};
use super::workers::Workers;
use crate::engine::Engine;
use crate::error::AccessError;
use crate::wire::{self, Kind, Record, RECORD_LEN};
use std::collections::HashSet;
use std::io::Write;

/// Registers one session may have journaled: bounds the daemon's memory whatever a client
/// sends (a register costs 24 bytes here).
const JOURNAL_LIMIT: usize = 1 << 20;

/// What executing one request did.
#[derive(Debug)]
pub struct Outcome {
    result: Result<u64, AccessError>,
    /// For a write that happened: the register's value before it, when asked for.
    original: Option<u64>,
}

/// Executes one request on `engine`; needs no session state, so a CPU worker can run it.
pub fn execute(engine: &mut Engine, req: &Record, capture_original: bool) -> Outcome {
    let (cpu, dev, reg) = (req.cpu, req.device, req.reg);
    match Kind::from_code(req.kind) {
        Some(Kind::Read) => Outcome { result: engine.read(cpu, dev, reg), original: None },
        Some(Kind::Write) => {
            // A register that cannot be read (a write-only command) cannot be restored either.
            let before = if capture_original { engine.read(cpu, dev, reg).ok() } else { None };
            let result = engine.write(cpu, dev, reg, req.data).map(|()| 0);
            let original = if result.is_ok() { before } else { None };
            Outcome { result, original }
        }
        Some(Kind::Check) => Outcome { result: engine.check(cpu, dev).map(|_| 0), original: None },
        Some(Kind::Exit | Kind::Hello | Kind::Batch) | None => {
            Outcome { result: Err(AccessError::UnknownRequest), original: None }
        }
    }
}

type Key = (u32, i32, u32);

/// Direct-mapped slots of `Journal::recent`.
const RECENT: usize = 64;

struct Journal {
    seen: HashSet<Key>,
    /// Original values in first-write order.
    originals: Vec<(u32, i32, u32, u64)>,
    /// Keys known to be in `seen`, direct-mapped: a session rewrites the same few control
    /// registers every interval (LIKWID's timeline: IA32_PERF_GLOBAL_CTRL twice per CPU), and
    /// `seen`'s SipHash, asked three times per write, was half of a write's 1 300 daemon
    /// instructions (callgrind). A slot only ever holds a key already in `seen`, so a hit is
    /// the set's answer; a miss asks the set (which stays keyed against crafted collisions).
    recent: [Option<Key>; RECENT],
}

impl Default for Journal {
    fn default() -> Journal {
        Journal { seen: HashSet::new(), originals: Vec::new(), recent: [None; RECENT] }
    }
}

impl Journal {
    fn slot(key: Key) -> usize {
        let (cpu, device, reg) = key;
        (reg ^ (reg >> 6) ^ cpu.wrapping_mul(0x9E37_79B9) ^ (device as u32).wrapping_mul(0x85EB_CA6B)) as usize % RECENT
    }

    /// Whether the register's original value is journaled already (or was never restorable:
    /// either way it is not captured again).
    fn has(&mut self, key: Key) -> bool {
        let slot = Journal::slot(key);
        if self.recent[slot] == Some(key) {
            return true;
        }
        let has = self.seen.contains(&key);
        if has {
            self.recent[slot] = Some(key);
        }
        has
    }

    fn record(&mut self, key: Key, old: u64) {
        if self.seen.insert(key) {
            self.originals.push((key.0, key.1, key.2, old));
        }
        self.recent[Journal::slot(key)] = Some(key);
    }
}

pub struct Session<'e> {
    engine: &'e mut Engine,
    audit: Audit,
    journal: Journal,
    trace: Option<Box<dyn Write>>,
    /// Pinned per-CPU workers for batches, when they pay off (kernel msr devices).
    workers: Option<Workers>,
}

impl<'e> Session<'e> {
    pub fn new(engine: &'e mut Engine, peer: Peer, trace: Option<Box<dyn Write>>, workers: bool) -> Session<'e> {
        let workers = workers.then(Workers::default);
        Session { engine, audit: Audit::new(peer), journal: Journal::default(), trace, workers }
    }

    fn key(req: &Record) -> Key {
        (req.cpu, req.device, req.reg)
    }

    /// Whether a write must first capture the register's value for the journal. Settings
    /// meant to outlive the session (prefetchers, uncore clock) are never journaled.
    fn needs_original(&mut self, req: &Record) -> bool {
        req.kind == Kind::Write.code()
            && !(req.device == wire::MSR_DEV && crate::policy::persists(req.reg))
            && !self.journal.has(Session::key(req))
    }

    /// A write the journal could not take back is refused before it happens.
    fn journal_full(&mut self, req: &Record) -> bool {
        self.needs_original(req) && self.journal.seen.len() >= JOURNAL_LIMIT
    }

    /// Journals, audits and traces an executed request and builds its reply.
    fn settle(&mut self, req: &Record, outcome: Outcome) -> Record {
        if let Some(old) = outcome.original {
            self.journal.record(Session::key(req), old);
        }
        let reply = match &outcome.result {
            Ok(data) => req.reply(*data, wire::ERR_NOERROR),
            Err(e) => {
                self.audit.refused(req, e);
                req.reply(0, e.wire_code())
            }
        };
        if let Some(trace) = self.trace.as_mut() {
            let op = Kind::verb(req.kind);
            let data = if req.kind == Kind::Write.code() { req.data } else { reply.data };
            let code = wire::code_name(reply.errorcode);
            let _ = writeln!(trace, "{op} {} {} {:#x} {data:#x} {code}", req.cpu, req.device, req.reg);
        }
        reply
    }

    fn refuse_full_journal() -> Outcome {
        log::error!("session wrote {JOURNAL_LIMIT} distinct registers; refusing more");
        Outcome { result: Err(AccessError::ReadWrite(libc::ENOMEM)), original: None }
    }

    /// Room in the journal for `entries` more registers, without aborting when memory is short
    /// (the user may lower the daemon's RLIMIT_AS): a write that could not be taken back is
    /// refused instead.
    fn reserve_journal(&mut self, entries: usize) -> bool {
        self.journal.seen.try_reserve(entries).is_ok() && self.journal.originals.try_reserve(entries).is_ok()
    }

    fn refuse_no_memory() -> Outcome {
        log::error!("no memory to journal the original value of a register; refusing the write");
        Outcome { result: Err(AccessError::ReadWrite(libc::ENOMEM)), original: None }
    }

    /// Executes one request and builds its reply.
    #[inline]
    pub fn answer(&mut self, req: &Record) -> Record {
        // A read that succeeds and is not traced has nothing to journal, audit or log: its
        // reply is its value (about 90 instructions less per read, callgrind). Inlined into
        // the serve loop and the batch loop; everything else takes `execute_and_settle`.
        if req.kind == wire::Kind::Read.code() && self.trace.is_none() {
            return match self.engine.read(req.cpu, req.device, req.reg) {
                Ok(data) => req.reply(data, wire::ERR_NOERROR),
                Err(e) => self.settle(req, Outcome { result: Err(e), original: None }),
            };
        }
        self.answer_other(req)
    }

    /// Everything but a read: not inlined, so the read's path stays short.
    #[inline(never)]
    fn answer_other(&mut self, req: &Record) -> Record {
        // A write whose register is journaled already (every write after the first to it)
        // has nothing to capture, and nothing to log when it succeeds (LIKWID's timeline
        // rewrites IA32_PERF_GLOBAL_CTRL twice per CPU per interval).
        if req.kind == wire::Kind::Write.code() && self.trace.is_none() && !self.needs_original(req) {
            return match self.engine.write(req.cpu, req.device, req.reg, req.data) {
                Ok(()) => req.reply(0, wire::ERR_NOERROR),
                Err(e) => self.settle(req, Outcome { result: Err(e), original: None }),
            };
        }
        self.execute_and_settle(req)
    }

    fn execute_and_settle(&mut self, req: &Record) -> Record {
        let capture = self.needs_original(req);
        let outcome = if capture && self.journal.seen.len() >= JOURNAL_LIMIT {
            Session::refuse_full_journal()
        } else if capture && !self.reserve_journal(1) {
            Session::refuse_no_memory()
        } else {
            execute(self.engine, req, capture)
        };
        self.settle(req, outcome)
    }

    /// Executes the requests encoded in `records` (a whole number of records) and overwrites
    /// each with its reply, in request order.
    pub fn answer_batch_in_place(&mut self, records: &mut [u8]) {
        if self.workers.is_none() {
            // `answer`'s read shortcut, with the reply written over the request in place: a
            // successful read changes only the record's data and code (decoding the whole
            // record and encoding the whole reply cost about 20 instructions per read,
            // callgrind). The trace cannot change during a batch: asked once.
            let untraced = self.trace.is_none();
            for slot in records.chunks_exact_mut(RECORD_LEN) {
                let slot: &mut [u8; RECORD_LEN] = slot.try_into().expect("chunks_exact gives whole records");
                // Decoded where used (the slot is the request until its reply is written): a
                // decoded record kept across the branches was copied to the stack per read.
                let (cpu, reg, device, kind) = {
                    let req = Record::decode(slot);
                    (req.cpu, req.reg, req.device, req.kind)
                };
                if untraced && kind == Kind::Read.code() {
                    match self.engine.read(cpu, device, reg) {
                        Ok(data) => Record::reply_in_place(slot, data, wire::ERR_NOERROR),
                        Err(e) => {
                            let req = Record::decode(slot);
                            *slot = self.settle(&req, Outcome { result: Err(e), original: None }).encode();
                        }
                    }
                } else {
                    *slot = self.answer_other(&Record::decode(slot)).encode();
                }
            }
            return;
        }
        let replies = self.answer_batch(&wire::decode_records(records));
        for (slot, reply) in records.chunks_exact_mut(RECORD_LEN).zip(&replies) {
            slot.copy_from_slice(&reply.encode());
        }
    }

    /// Executes a batch, on the CPUs' pinned workers when there are any, and builds the replies
    /// in request order. Requests of one CPU run in order; different CPUs may run in parallel.
    pub fn answer_batch(&mut self, reqs: &[Record]) -> Vec<Record> {
        let Some(mut workers) = self.workers.take() else {
            return reqs.iter().map(|r| self.answer(r)).collect();
        };
        let mut outcomes: Vec<Option<Outcome>> = reqs.iter().map(|_| None).collect();
        let (mut jobs, mut here) = (Vec::with_capacity(reqs.len()), Vec::new());
        let journaled = reqs.iter().filter(|r| self.needs_original(r)).count();
        let room = journaled == 0 || self.reserve_journal(journaled);
        for (i, req) in reqs.iter().enumerate() {
            if self.journal_full(req) {
                outcomes[i] = Some(Session::refuse_full_journal());
            } else if !room && self.needs_original(req) {
                outcomes[i] = Some(Session::refuse_no_memory());
            } else if req.device == wire::MSR_DEV {
                jobs.push((i, *req, self.needs_original(req)));
            } else {
                // PCI devices belong to a socket, not to one CPU: no worker to pin.
                here.push((i, *req, self.needs_original(req)));
            }
        }
        let (done, inline) = workers.run(self.engine, jobs);
        let inline = inline.into_iter().chain(here);
        for (i, outcome) in done {
            outcomes[i] = Some(outcome);
        }
        for (i, req, capture) in inline {
            outcomes[i] = Some(execute(self.engine, &req, capture));
        }
        self.workers = Some(workers);
        reqs.iter().zip(outcomes).map(|(req, o)| self.settle(req, o.expect("every request executed"))).collect()
    }

    /// Ends the session: without EXIT, every journaled register gets its original value
    /// back (each on its own; failures are logged, the rest still restored), unless another
    /// user holds the lock file by then.
    pub fn finish(mut self, ended: &Ended) -> usize {
        self.workers = None;
        self.audit.summary();
        if matches!(ended, Ended::Exit) {
            return 0;
        }
        let pending = self.journal.originals.len();
        if pending > 0 && self.engine.locked_now() {
            log::warn!(
                "client left without EXIT; not restoring {pending} registers: the lock file is held by another user"
            );
            return 0;
        }
        let mut restored = 0;
        for &(cpu, device, reg, old) in self.journal.originals.iter().rev() {
            match self.engine.write(cpu, device, reg, old) {
                Ok(()) => restored += 1,
                Err(AccessError::Locked) => {
                    log::warn!("lock taken during restore; {} registers not restored", pending - restored);
                    break;
                }
                Err(e) => log::error!("restore of cpu={cpu} device={device} reg={reg:#x} to {old:#x} failed: {e}"),
            }
        }
        if restored > 0 {
            log::info!("client left without EXIT; restored {restored} registers");
        }
        restored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recent slots are only a shortcut: with many more keys than slots (so every slot is
    /// shared and overwritten), `has` answers as the set does, and a register keeps the
    /// original of its first write.
    #[test]
    fn the_journal_answers_as_its_set_whatever_the_recent_slots_hold() {
        let mut journal = Journal::default();
        let keys: Vec<Key> = (0..8 * RECENT as u32).map(|i| (i % 3, (i % 2) as i32, 0x300 + i / 2)).collect();
        for (n, &key) in keys.iter().enumerate() {
            assert!(!journal.has(key), "{key:?} before its first write");
            journal.record(key, n as u64);
            assert!(journal.has(key), "{key:?} after its first write");
        }
        for _ in 0..2 {
            for &key in keys.iter().rev() {
                assert!(journal.has(key), "{key:?}");
                assert!(!journal.has((key.0 + 3, key.1, key.2)), "{key:?} on another CPU");
            }
        }
        journal.record(keys[0], 999);
        assert_eq!(journal.originals.len(), keys.len());
        assert_eq!(journal.originals[0], (keys[0].0, keys[0].1, keys[0].2, 0), "the first original is kept");
    }
    use crate::daemon::Peer;
    use crate::device::{MsrFile, RegisterDevice};
    use crate::policy::pci::Numbering;
    use crate::root::Root;

    /// Each request of a batch is checked against the lock on its own, as a single request is
    /// (LIKWID checks per request): a lock taken while a batch runs refuses every request after
    /// it was seen, and nothing after that point is written. The recheck interval is zero here
    /// so the test sees it within one batch; the daemon's is `lock::RECHECK` for both.
    #[test]
    fn a_lock_taken_mid_batch_stops_the_writes_after_it() {
        const PERF_CTR0: u32 = 0xC001_0201;
        const BASE: u64 = 0x1_0000;
        let dir = std::env::temp_dir().join(format!("likwid-session-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let model = crate::policy::CpuModel::by_name("zen4").unwrap();
        crate::sim::create(&dir, model, &[0, 1]).unwrap();
        let root = Root::new(&dir);
        let uid = nix::unistd::getuid().as_raw();
        let mut engine = Engine::open(&root, uid, Numbering::Likwid52).unwrap();
        engine.recheck_lock_every(std::time::Duration::ZERO);
        let n = wire::MAX_BATCH as u64;
        let mut body: Vec<u8> = (1..=n)
            .flat_map(|i| Record::request(wire::Kind::Write, 0, wire::MSR_DEV, PERF_CTR0, BASE + i).encode())
            .collect();
        // Once the batch has written, make the lock's state unknowable (its directory becomes
        // a file: ENOTDIR), which counts as locked.
        let store = MsrFile::open(&root.msr(0)).unwrap();
        let run_dir = root.lock_file().parent().unwrap().to_path_buf();
        let locker = std::thread::spawn(move || {
            while !(BASE + 1..=BASE + n).contains(&store.read(PERF_CTR0).unwrap()) {
                std::thread::yield_now();
            }
            std::fs::remove_dir(&run_dir).unwrap();
            std::fs::write(&run_dir, b"").unwrap();
        });
        let mut session = Session::new(&mut engine, Peer { uid, pid: 0 }, None, false);
        session.answer_batch_in_place(&mut body);
        locker.join().unwrap();
        let codes: Vec<i32> =
            body.chunks_exact(RECORD_LEN).map(|r| Record::decode(r.try_into().unwrap()).errorcode).collect();
        let first_locked = codes.iter().position(|&c| c == wire::ERR_LOCKED).expect("no request saw the lock");
        assert!(first_locked > 0, "the lock was taken after the first write");
        assert!(
            codes[..first_locked].iter().all(|&c| c == wire::ERR_NOERROR),
            "before the lock: {:?}",
            &codes[..first_locked]
        );
        let after = &codes[first_locked..];
        assert!(after.iter().all(|&c| c == wire::ERR_LOCKED), "a request after the lock was seen was not refused");
        let value = MsrFile::open(&root.msr(0)).unwrap().read(PERF_CTR0).unwrap();
        assert_eq!(value, BASE + first_locked as u64, "the register holds the last write before the lock");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
