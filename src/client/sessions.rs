//! LIKWID 3's per-socket sessions: `accessClient_init` starts one daemon per call and hands out
//! the connection's file descriptor, and `msr_tread`/`msr_twrite` name the session by it, so a
//! thread-per-socket program talks to its own daemon without sharing a lock with the others.
//! The descriptor `-1` names the process-wide session the HPM functions use.

use super::conn::Connection;
use super::turnstile::Turnstile;
use super::{daemon_access, daemon_check, launch};
use crate::engine::Op;
use crate::error::{AccessError, StartError};
use crate::sys;
use crate::wire;
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The descriptor that names the process-wide session (LIKWID 3's "no socket").
pub const PROCESS_SESSION: i32 = -1;

/// One daemon of our own, with the machine's (hardware thread, socket) list from its greeting.
pub struct Session {
    conn: Connection,
    cpus: Vec<(u32, u32)>,
}

impl Session {
    /// Launches a daemon for this session. Prints nothing: callers decide how to report.
    pub fn start() -> Result<Session, StartError> {
        let (conn, cpus) = launch::launch(sys::secure_exec())?;
        Ok(Session { conn, cpus })
    }

    pub fn cpus(&self) -> Vec<u32> {
        self.cpus.iter().map(|(cpu, _)| *cpu).collect()
    }

    pub fn pid(&self) -> u32 {
        self.conn.pid()
    }

    /// The record's `cpu` for `device` on hardware thread `cpu`: the thread for MSRs, its
    /// socket for PCI uncore devices (as the HPM functions address them).
    fn cpu(&self, cpu: u32, device: i32) -> Result<u32, AccessError> {
        let i = self.cpus.binary_search_by_key(&cpu, |(c, _)| *c).map_err(|_| AccessError::OutOfRange)?;
        match device {
            wire::MSR_DEV => Ok(cpu),
            d if super::PCI_NUMBERING.name(d).is_some() => Ok(self.cpus[i].1),
            _ => Err(AccessError::BadDevice),
        }
    }

    /// One read or write, checked as the HPM functions check it.
    pub fn access(&mut self, cpu: u32, device: i32, reg: u32, op: Op) -> Result<u64, AccessError> {
        let cpu = self.cpu(cpu, device)?;
        daemon_access(&mut self.conn, cpu, device, reg, op)
    }

    /// LIKWID's CHECK: Ok when the daemon can use `device` on `cpu`.
    pub fn check(&mut self, cpu: u32, device: i32) -> Result<(), AccessError> {
        let cpu = self.cpu(cpu, device)?;
        daemon_check(&mut self.conn, cpu, device)
    }

    /// EXIT, then reap the daemon.
    pub fn close(self) {
        self.conn.close();
    }

    fn fd(&self) -> i32 {
        self.conn.as_raw_fd()
    }
}

/// An open session and the process that opened it (a forked child must not use it).
struct Entry {
    owner_pid: u32,
    /// Threads sharing the session take turns in arrival order (see turnstile.rs).
    gate: Turnstile,
    session: Mutex<Option<Session>>,
}

/// Open sessions by descriptor. The table lock is held only to look an entry up; each session
/// has its own lock, so sessions of different threads never wait for each other.
static SESSIONS: Mutex<BTreeMap<i32, Arc<Entry>>> = Mutex::new(BTreeMap::new());
/// The session `msr_read`/`msr_write` use (set by `msr_init`).
static DEFAULT_SESSION: AtomicI32 = AtomicI32::new(PROCESS_SESSION);

fn table() -> MutexGuard<'static, BTreeMap<i32, Arc<Entry>>> {
    SESSIONS.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock(entry: &Entry) -> MutexGuard<'_, Option<Session>> {
    entry.session.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a session (daemon mode) and returns its descriptor. In direct mode there is no
/// daemon to start: the answer is `PROCESS_SESSION`, as LIKWID 3 left the socket unset.
pub fn open() -> Result<i32, AccessError> {
    if super::with_state(|s| s.mode) == super::Mode::Direct {
        return Ok(PROCESS_SESSION);
    }
    let session = Session::start()?;
    let fd = session.fd();
    let entry =
        Arc::new(Entry { owner_pid: std::process::id(), gate: Turnstile::new(), session: Mutex::new(Some(session)) });
    table().insert(fd, entry);
    Ok(fd)
}

/// Ends the session `fd` (EXIT, reap). `PROCESS_SESSION` is left alone, as in LIKWID 3.
pub fn close(fd: i32) -> Result<(), AccessError> {
    if fd == PROCESS_SESSION {
        return Ok(());
    }
    let entry = table().remove(&fd).ok_or(AccessError::NoSession(fd))?;
    let _ = DEFAULT_SESSION.compare_exchange(fd, PROCESS_SESSION, Ordering::SeqCst, Ordering::SeqCst);
    let session = lock(&entry).take().ok_or(AccessError::NoSession(fd))?;
    if entry.owner_pid == std::process::id() {
        session.close();
    } else {
        // Inherited through fork(): the daemon is the parent's to end and reap.
        session.conn.abandon();
    }
    Ok(())
}

/// One access through session `fd`; `PROCESS_SESSION` goes through the HPM functions' state
/// (adding the cpu on first use).
pub fn access(fd: i32, cpu: i32, device: i32, reg: u32, op: Op) -> Result<u64, AccessError> {
    let cpu = u32::try_from(cpu).map_err(|_| AccessError::OutOfRange)?;
    if fd == PROCESS_SESSION {
        super::add_thread(cpu)?;
        return Ok(match op {
            Op::Read => super::read(cpu, device, reg)?,
            Op::Write(v) => super::write(cpu, device, reg, v).map(|()| 0)?,
        });
    }
    let entry = table().get(&fd).cloned().ok_or(AccessError::NoSession(fd))?;
    if entry.owner_pid != std::process::id() {
        return Err(AccessError::Channel(format!(
            "session {fd} belongs to the parent process; call accessClient_init in the child"
        )));
    }
    let _turn = entry.gate.turn();
    let mut guard = lock(&entry);
    let session = guard.as_mut().ok_or(AccessError::NoSession(fd))?;
    session.access(cpu, device, reg, op)
}

/// Makes `fd` the session of `msr_read`/`msr_write` (LIKWID 3's `msr_init`).
pub fn set_default(fd: i32) -> Result<(), AccessError> {
    if fd != PROCESS_SESSION && !table().contains_key(&fd) {
        return Err(AccessError::NoSession(fd));
    }
    DEFAULT_SESSION.store(fd, Ordering::SeqCst);
    Ok(())
}

/// The session of `msr_read`/`msr_write`.
pub fn default_session() -> i32 {
    DEFAULT_SESSION.load(Ordering::SeqCst)
}

/// LIKWID 3's `msr_finalize`: forgets the default session. When that was the process-wide
/// one, it ends as with HPMfinalize; a session from accessClient_init stays open until
/// accessClient_finalize.
pub fn clear_default() {
    if DEFAULT_SESSION.swap(PROCESS_SESSION, Ordering::SeqCst) == PROCESS_SESSION {
        super::finalize();
    }
}
