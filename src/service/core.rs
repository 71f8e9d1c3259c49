//! The service's shared state: the live sessions, which session programs which CPU, each
//! session's journal, and an engine for restores. Every write, and every restore, happens under
//! one mutex, held for a request or a short run of them and never across socket I/O, so a slow
//! client holds nobody up and one session's journal and ownership checks see the others'.
//! Reads and checks change nothing shared: each connection's thread answers them on an engine
//! of its own (`Session`, shared device files) without this mutex.

use super::config::{Access, Reads};
use super::journal::{Entry, JournalFile};
use super::scope::format_cpu_list;
use super::session::Session;
use crate::engine::Engine;
use crate::error::AccessError;
use crate::lock::LockWatch;
use crate::policy::pci::Numbering;
use crate::policy::{apply_mask, Policy, WriteRule};
use crate::wire::{self, Kind, Record};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub type SessionId = u64;

/// Registers one session may journal (as the daemon's sessions).
const JOURNAL_LIMIT: usize = 1 << 20;
/// Refusals logged per session before the rest are only counted.
const LOGGED_REFUSALS: u32 = 20;

/// What a session may do, fixed when it starts, and whether it has ended: shared by the core
/// (writes, status, the log) and the connection's thread (reads, without the core's lock).
pub struct Rights {
    pub access: Access,
    /// The allowlist of the service.conf rule that admitted the client: it narrows the engine's
    /// policy for MSRs (both must allow, masks intersect).
    pub allowlist: Option<Policy>,
    /// CPUs the client may write (None: any; root, `cpu-scope off`, no cpuset controller).
    pub cpuset: Option<BTreeSet<u32>>,
    pub reads: Reads,
    /// Set when the core ends the session (its end, an admin reset, SIGTERM): its thread then
    /// answers nothing more, reads included.
    ended: AtomicBool,
}

impl Rights {
    pub fn new(access: Access, allowlist: Option<Policy>, cpuset: Option<BTreeSet<u32>>, reads: Reads) -> Rights {
        Rights { access, allowlist, cpuset, reads, ended: AtomicBool::new(false) }
    }

    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// Whether the client may touch `targets` (the hardware threads of one request): all of
    /// them for a write, one of them for a read.
    pub fn in_scope(&self, targets: &[u32], all: bool) -> bool {
        match &self.cpuset {
            None => true,
            Some(set) if all => targets.iter().all(|c| set.contains(c)),
            Some(set) => targets.iter().any(|c| set.contains(c)),
        }
    }
}

/// A session's client, fixed when the session starts.
pub struct Client {
    pub uid: u32,
    pub pid: i32,
    pub rights: Arc<Rights>,
    /// The client's cgroup paths, for `reset job=ID`.
    pub cgroups: Vec<String>,
    pub numbering: Numbering,
    /// LIKWID's lock file, judged for this client's uid (restores; the session's engine has
    /// its own copy for its requests).
    pub lock: LockWatch,
    /// A handle on the connection, so an admin reset or SIGTERM can end it.
    pub stream: Option<Arc<UnixStream>>,
    /// How the client reached us, for the log: "library" or "LIKWID".
    pub via: &'static str,
}

struct Live {
    client: Client,
    /// CPUs this session has programmed: no other session may write them until it ends.
    owned: BTreeSet<u32>,
    /// Registers whose original value is on disk, with that value and whether the session has
    /// written them since (a refused write is journaled once, never again).
    journaled: HashMap<(u32, i32, u32), (u64, bool)>,
    originals: Vec<Entry>,
    journal: Option<JournalFile>,
    writes: u64,
    refusals: u32,
    /// Whether the session's opening record is in the log (see `announce`).
    announced: bool,
}

/// Who programs a CPU: one client process, with one session or several. LIKWID 5 starts one
/// daemon per thread that touches other CPUs, so one process may hold several sessions;
/// they share its CPUs. Another process gets -EBUSY.
struct Owner {
    process: (u32, i32),
    sessions: BTreeSet<SessionId>,
}

/// The process a session's CPUs belong to; an unknown pid is a process of its own.
fn process_of(id: SessionId, client: &Client) -> (u32, i32) {
    if client.pid > 0 {
        (client.uid, client.pid)
    } else {
        (client.uid, -(id.min(i32::MAX as u64) as i32))
    }
}

pub struct Core {
    /// Restores and journal replays (the sessions' requests run on their own engines).
    engine: Engine,
    sessions: BTreeMap<SessionId, Live>,
    owners: HashMap<u32, Owner>,
    next_id: SessionId,
    journal_dir: PathBuf,
    /// Set by SIGTERM: nothing is written any more.
    stopping: bool,
}

/// The core's mutex, taken whatever a thread that panicked holding it left: every change under
/// it is complete before the next can panic (a journal entry before its write, the write before
/// the CPU is taken).
pub fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a write may touch besides its session: borrowed from `Core` beside the session, so
/// a request finds its session in place (it was taken out of the map and put back, moving
/// the whole session twice: ~1 300 of the ~1 700 instructions a single read cost; callgrind).
struct Desk<'a> {
    engine: &'a mut Engine,
    owners: &'a mut HashMap<u32, Owner>,
    journal_dir: &'a Path,
}

/// Which sessions an admin reset ends (all filters must match; none: every session).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    pub cpus: Option<Vec<u32>>,
    pub uid: Option<u32>,
    pub job: Option<String>,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// EXIT: keep what the client programmed (LIKWID's tools rely on it).
    Exit,
    /// The client went away, the channel broke, an admin reset, SIGTERM: restore.
    Restore,
}

impl Core {
    pub fn new(engine: Engine, journal_dir: PathBuf) -> Core {
        Core { engine, sessions: BTreeMap::new(), owners: HashMap::new(), next_id: 1, journal_dir, stopping: false }
    }

    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// (hardware thread, socket) of every CPU.
    pub fn sockets(&self) -> Vec<(u32, u32)> {
        self.engine.sockets().to_vec()
    }

    /// Opens a session for `client`, to be served by the caller (its connection's thread) on
    /// the returned engine; its record goes to the log with `announce`.
    pub fn open(&mut self, client: Client) -> Session {
        let id = self.next_id;
        self.next_id += 1;
        let session = Session::new(id, self.engine.for_client(client.numbering, client.lock.clone()), &client.rights);
        let live = Live {
            client,
            owned: BTreeSet::new(),
            journaled: HashMap::new(),
            originals: Vec::new(),
            journal: None,
            writes: 0,
            refusals: 0,
            announced: false,
        };
        self.sessions.insert(id, live);
        session
    }

    /// Logs session `id`'s opening record, once. The serving thread calls it after the first
    /// reply is out, so the log is not on the path from connect to the first reply (a record
    /// costs its formatting and a send to syslog, ~10 us here); a refusal or the session's end
    /// logs it first if it has not been, so the log still reads in order.
    pub fn announce(&mut self, id: SessionId) {
        if let Some(live) = self.sessions.get_mut(&id) {
            announce(id, live);
        }
    }

    /// Executes a write of session `id` on its engine (`targets`: the hardware threads it
    /// touches); None when the session no longer exists (an admin ended it, or the service is
    /// stopping): the caller closes the connection.
    pub(super) fn write(
        &mut self,
        id: SessionId,
        engine: &mut Engine,
        req: &Record,
        targets: &[u32],
    ) -> Option<Result<u64, (AccessError, String)>> {
        if self.stopping {
            return None;
        }
        let Core { sessions, owners, journal_dir, .. } = self;
        let live = sessions.get_mut(&id)?;
        let mut desk = Desk { engine, owners, journal_dir };
        Some(desk.write_request(id, live, req, targets).map(|()| 0))
    }

    /// Logs (the first few) and counts a refused request of session `id`.
    pub(super) fn refused(&mut self, id: SessionId, req: &Record, e: &AccessError, why: &str) {
        if let Some(live) = self.sessions.get_mut(&id) {
            refused(id, live, req, e, why);
        }
    }

    /// Ends session `id`: restores its registers unless it said EXIT, removes its journal,
    /// frees its CPUs. Returns the number of registers restored (None: no such session).
    pub fn end(&mut self, id: SessionId, end: End) -> Option<usize> {
        let mut live = self.sessions.remove(&id)?;
        live.client.rights.ended.store(true, Ordering::Relaxed);
        announce(id, &mut live);
        for cpu in &live.owned {
            if let Some(owner) = self.owners.get_mut(cpu) {
                owner.sessions.remove(&id);
                if owner.sessions.is_empty() {
                    self.owners.remove(cpu);
                }
            }
        }
        let restored = match end {
            End::Exit => 0,
            End::Restore => {
                self.engine.set_numbering(live.client.numbering);
                let c = &mut live.client;
                restore(&mut self.engine, &mut c.lock, &live.originals, &format!("session {id} (uid={})", c.uid))
            }
        };
        if let Some(stream) = &live.client.stream {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        if let Some(journal) = live.journal.take() {
            journal.remove();
        }
        if live.refusals > LOGGED_REFUSALS {
            log::warn!("session {id}: {} more refusals not logged", live.refusals - LOGGED_REFUSALS);
        }
        let how = if end == End::Exit { "EXIT, registers kept as programmed" } else { "restored" };
        log::info!(
            "session {id} ended (uid={} pid={}): {} writes, {} registers journaled, {restored} {how}",
            live.client.uid,
            live.client.pid,
            live.writes,
            live.originals.len()
        );
        Some(restored)
    }

    /// One line per session for `status`.
    pub fn status(&self) -> Vec<String> {
        self.sessions
            .iter()
            .map(|(id, s)| {
                let cpus: Vec<u32> = s.owned.iter().copied().collect();
                format!(
                    "session {id} uid={} pid={} cpus={} writes={}",
                    s.client.uid,
                    s.client.pid,
                    if cpus.is_empty() { "-".into() } else { format_cpu_list(&cpus) },
                    s.writes
                )
            })
            .collect()
    }

    /// Ends every session `filter` matches, restoring what it changed; one line per session.
    pub fn reset(&mut self, filter: &Filter) -> Vec<String> {
        let matching: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| filter.uid.is_none_or(|u| s.client.uid == u))
            .filter(|(_, s)| filter.job.as_ref().is_none_or(|j| super::scope::in_job(&s.client.cgroups, j)))
            // CPUs a session programs, not those it may use: an unconfined reader must not be
            // ended by every job's epilog.
            .filter(|(_, s)| filter.cpus.as_ref().is_none_or(|cpus| cpus.iter().any(|c| s.owned.contains(c))))
            .map(|(id, _)| *id)
            .collect();
        matching
            .into_iter()
            .map(|id| {
                let (uid, pid) = self.sessions.get(&id).map(|s| (s.client.uid, s.client.pid)).unwrap_or_default();
                let restored = self.end(id, End::Restore).unwrap_or(0);
                log::info!("admin reset ended session {id} (uid={uid} pid={pid}), {restored} registers restored");
                format!("ended session {id} uid={uid} pid={pid} restored={restored}")
            })
            .collect()
    }

    /// SIGTERM: end every session with a restore; nothing is served afterwards.
    pub fn stop(&mut self) -> usize {
        // Newest first: where sessions wrote one register in turn, the oldest original wins.
        let ids: Vec<SessionId> = self.sessions.keys().rev().copied().collect();
        let count = ids.len();
        for id in ids {
            self.end(id, End::Restore);
        }
        self.stopping = true;
        count
    }
}

impl Desk<'_> {
    /// A write request: access, scope, ownership, the rule's allowlist, then the journal and
    /// the engine.
    fn write_request(
        &mut self,
        id: SessionId,
        live: &mut Live,
        req: &Record,
        targets: &[u32],
    ) -> Result<(), (AccessError, String)> {
        let denied = |why: &str| (AccessError::Denied { reg: req.reg, write: true }, why.to_string());
        let rights = &live.client.rights;
        if rights.access != Access::ReadWrite {
            return Err(denied("service.conf grants this user read access only"));
        }
        if !rights.in_scope(targets, true) {
            return Err(denied("outside the client's cpuset"));
        }
        let process = process_of(id, &live.client);
        // A CPU this session programs already is its process's: no other owner to look for.
        let busy = targets
            .iter()
            .filter(|c| !live.owned.contains(c))
            .find_map(|c| Some((*c, self.owners.get(c)?)).filter(|(_, o)| o.process != process));
        if let Some((cpu, owner)) = busy {
            let session = owner.sessions.iter().next().copied().unwrap_or_default();
            let (uid, pid) = owner.process;
            let why = format!("cpu {cpu} is programmed by session {session} (uid={uid} pid={pid})");
            return Err((AccessError::Busy, why));
        }
        let value = self.narrowed(live, req)?;
        self.write(id, live, req, value, targets)
    }

    /// The value to hand the engine once the rule's allowlist had its say: a masked merge
    /// with the current value, so the engine's own mask then applies on top (both masks).
    fn narrowed(&mut self, live: &Live, req: &Record) -> Result<u64, (AccessError, String)> {
        let Some(allow) = live.client.rights.allowlist.as_ref().filter(|_| req.device == wire::MSR_DEV) else {
            return Ok(req.data);
        };
        let denied =
            || (AccessError::Denied { reg: req.reg, write: true }, "not writable in the rule's allowlist".into());
        match allow.write_rule(req.reg) {
            WriteRule::Denied => Err(denied()),
            WriteRule::Masked(u64::MAX) => Ok(req.data),
            rule => {
                let old = self.engine.read(req.cpu, req.device, req.reg).map_err(|e| (e, String::new()))?;
                match rule {
                    WriteRule::Masked(mask) => Ok(apply_mask(old, req.data, mask)),
                    _ if old == req.data => Ok(old),
                    _ => Err(denied()),
                }
            }
        }
    }

    /// Journals the original value (on disk first), writes, and takes the CPUs.
    fn write(
        &mut self,
        id: SessionId,
        live: &mut Live,
        req: &Record,
        value: u64,
        targets: &[u32],
    ) -> Result<(), (AccessError, String)> {
        let key = (req.cpu, req.device, req.reg);
        // Settings meant to outlive the session (prefetchers, uncore clock) are not journaled.
        let persists = req.device == wire::MSR_DEV && crate::policy::persists(req.reg);
        // One look-up for a register the session wrote before (LIKWID's timeline writes the
        // same control registers every interval); SipHash is ~145 instructions a look-up.
        let known = live.journaled.get(&key).copied();
        if !persists && known.is_none() {
            if live.journaled.len() >= JOURNAL_LIMIT {
                return Err((AccessError::ReadWrite(libc::ENOMEM), format!("session wrote {JOURNAL_LIMIT} registers")));
            }
            // A register that cannot be read (a write-only command) cannot be restored either.
            if let Ok(old) = self.engine.read(req.cpu, req.device, req.reg) {
                if let Err(e) = self.journal_entry(id, live, (req.cpu, req.device, req.reg, old)) {
                    let why = format!("cannot journal the original value in {}: {e}", self.journal_dir.display());
                    return Err((AccessError::ReadWrite(e.raw_os_error().unwrap_or(libc::EIO)), why));
                }
                live.journaled.insert(key, (old, false));
            }
        }
        self.engine.write(req.cpu, req.device, req.reg, value).map_err(|e| (e, String::new()))?;
        live.writes += 1;
        if known.is_none_or(|(_, written)| !written) {
            if let Some((old, written)) = live.journaled.get_mut(&key).filter(|(_, w)| !*w) {
                *written = true;
                live.originals.push((req.cpu, req.device, req.reg, *old));
            }
        }
        let process = process_of(id, &live.client);
        for &cpu in targets {
            if !live.owned.contains(&cpu) && live.owned.insert(cpu) {
                let owner = self.owners.entry(cpu).or_insert_with(|| Owner { process, sessions: BTreeSet::new() });
                owner.sessions.insert(id);
            }
        }
        Ok(())
    }

    fn journal_entry(&self, id: SessionId, live: &mut Live, entry: Entry) -> std::io::Result<()> {
        let journal = match &mut live.journal {
            Some(journal) => journal,
            none => {
                let c = &live.client;
                none.insert(JournalFile::create(self.journal_dir, id, c.uid, c.pid, c.numbering)?)
            }
        };
        journal.append(entry)
    }
}

/// Writes `originals` back, newest first, each on its own: a failure is logged and the rest
/// still restored; a lock file held by another user stops it (that would write into their
/// measurement, as the daemon's sessions). Returns how many were restored.
pub fn restore(engine: &mut Engine, lock: &mut LockWatch, originals: &[Entry], whose: &str) -> usize {
    if originals.is_empty() {
        return 0;
    }
    engine.swap_lock(lock);
    let mut restored = 0;
    if engine.locked_now() {
        log::warn!("{whose}: not restoring {} registers: the lock file is held by another user", originals.len());
    } else {
        for &(cpu, device, reg, old) in originals.iter().rev() {
            match engine.write(cpu, device, reg, old) {
                Ok(()) => restored += 1,
                Err(AccessError::Locked) => {
                    log::warn!(
                        "{whose}: lock taken during restore; {} registers not restored",
                        originals.len() - restored
                    );
                    break;
                }
                Err(e) => {
                    log::error!("{whose}: restore of cpu={cpu} device={device} reg={reg:#x} to {old:#x} failed: {e}")
                }
            }
        }
    }
    engine.swap_lock(lock);
    restored
}

fn announce(id: SessionId, live: &mut Live) {
    if live.announced {
        return;
    }
    live.announced = true;
    let client = &live.client;
    log::info!(
        "session {id} ({}): uid={} pid={} access={} cpus={} numbering={}",
        client.via,
        client.uid,
        client.pid,
        client.rights.access.name(),
        client.rights.cpuset.as_ref().map_or("any".into(), |s| format_cpu_list(&s.iter().copied().collect::<Vec<_>>())),
        client.numbering.label()
    );
}

fn refused(id: SessionId, live: &mut Live, req: &Record, e: &AccessError, why: &str) {
    announce(id, live);
    live.refusals += 1;
    if live.refusals > LOGGED_REFUSALS {
        return;
    }
    let op = Kind::verb(req.kind);
    let c = &live.client;
    let why = if why.is_empty() { e.to_string() } else { why.to_string() };
    let line = format!(
        "session {id}: refused {op}: uid={} pid={} cpu={} device={} reg={:#x}: {why}",
        c.uid, c.pid, req.cpu, req.device, req.reg
    );
    match e {
        AccessError::NoDevice | AccessError::Locked => log::info!("{line}"),
        _ => log::warn!("{line}"),
    }
}
