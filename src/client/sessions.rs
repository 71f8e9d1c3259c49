//! LIKWID 3's per-socket sessions: `accessClient_init` starts one daemon per call and hands out
//! the connection's file descriptor, and `msr_tread`/`msr_twrite` name the session by it, so a
//! thread-per-socket program talks to its own daemon without sharing a lock with the others.
//! The descriptor `-1` names the process-wide session the HPM functions use.

use super::conn::Connection;
use super::turnstile::Turnstile;
use super::{daemon_access, daemon_check, launch, report, ClientError};
use crate::engine::Op;
use crate::error::{AccessError, StartError};
use crate::sys;
use crate::wire;
use std::collections::BTreeMap;
use std::fmt;
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
    fn cpu(&self, cpu: u32, device: i32) -> Result<u32, ClientError> {
        let i = self.cpus.binary_search_by_key(&cpu, |(c, _)| *c).map_err(|_| ClientError::OutOfRange)?;
        match device {
            wire::MSR_DEV => Ok(cpu),
            d if super::PCI_NUMBERING.name(d).is_some() => Ok(self.cpus[i].1),
            _ => Err(ClientError::BadDevice),
        }
    }

    /// One read or write, checked as the HPM functions check it.
    pub fn access(&mut self, cpu: u32, device: i32, reg: u32, op: Op) -> Result<u64, ClientError> {
        let cpu = self.cpu(cpu, device)?;
        daemon_access(&mut self.conn, cpu, device, reg, op).map_err(ClientError::Access)
    }

    /// LIKWID's CHECK: Ok when the daemon can use `device` on `cpu`.
    pub fn check(&mut self, cpu: u32, device: i32) -> Result<(), ClientError> {
        let cpu = self.cpu(cpu, device)?;
        daemon_check(&mut self.conn, cpu, device).map_err(ClientError::Access)
    }

    /// EXIT, then reap the daemon.
    pub fn close(self) {
        self.conn.close();
    }

    fn fd(&self) -> i32 {
        self.conn.as_raw_fd()
    }
}

/// Why a LIKWID 3 call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The descriptor names no open session (never opened, or already finalized).
    NoSession(i32),
    /// An access mode other than direct (0) or daemon (1).
    BadMode(i32),
    /// A NULL pointer where the caller must pass memory.
    NullPointer,
    Client(ClientError),
}

impl SessionError {
    /// Positive errno, for LIKWID 3 functions that report through `errno`.
    pub fn errno(&self) -> i32 {
        match self {
            SessionError::NoSession(_) => libc::EBADF,
            SessionError::BadMode(_) => libc::EINVAL,
            SessionError::NullPointer => libc::EFAULT,
            SessionError::Client(e) => -e.errno(),
        }
    }
}

impl From<ClientError> for SessionError {
    fn from(e: ClientError) -> SessionError {
        SessionError::Client(e)
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::NoSession(fd) => {
                write!(f, "{fd} is not a session from accessClient_init (or it was already finalized)")
            }
            SessionError::BadMode(mode) => write!(f, "access mode {mode} is neither direct (0) nor daemon (1)"),
            SessionError::NullPointer => write!(f, "NULL pointer"),
            SessionError::Client(e) => write!(f, "{e}"),
        }
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
pub fn open() -> Result<i32, SessionError> {
    if super::with_state(|s| s.mode) == super::Mode::Direct {
        return Ok(PROCESS_SESSION);
    }
    let session = Session::start().map_err(report)?;
    let fd = session.fd();
    let entry =
        Arc::new(Entry { owner_pid: std::process::id(), gate: Turnstile::new(), session: Mutex::new(Some(session)) });
    table().insert(fd, entry);
    Ok(fd)
}

/// Ends the session `fd` (EXIT, reap). `PROCESS_SESSION` is left alone, as in LIKWID 3.
pub fn close(fd: i32) -> Result<(), SessionError> {
    if fd == PROCESS_SESSION {
        return Ok(());
    }
    let entry = table().remove(&fd).ok_or(SessionError::NoSession(fd))?;
    let _ = DEFAULT_SESSION.compare_exchange(fd, PROCESS_SESSION, Ordering::SeqCst, Ordering::SeqCst);
    let session = lock(&entry).take().ok_or(SessionError::NoSession(fd))?;
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
pub fn access(fd: i32, cpu: i32, device: i32, reg: u32, op: Op) -> Result<u64, SessionError> {
    let cpu = u32::try_from(cpu).map_err(|_| ClientError::OutOfRange)?;
    if fd == PROCESS_SESSION {
        super::add_thread(cpu)?;
        return Ok(match op {
            Op::Read => super::read(cpu, device, reg)?,
            Op::Write(v) => super::write(cpu, device, reg, v).map(|()| 0)?,
        });
    }
    let entry = table().get(&fd).cloned().ok_or(SessionError::NoSession(fd))?;
    if entry.owner_pid != std::process::id() {
        return Err(ClientError::Access(AccessError::Channel(format!(
            "session {fd} belongs to the parent process; call accessClient_init in the child"
        )))
        .into());
    }
    let _turn = entry.gate.turn();
    let mut guard = lock(&entry);
    let session = guard.as_mut().ok_or(SessionError::NoSession(fd))?;
    Ok(session.access(cpu, device, reg, op)?)
}

/// Makes `fd` the session of `msr_read`/`msr_write` (LIKWID 3's `msr_init`).
pub fn set_default(fd: i32) -> Result<(), SessionError> {
    if fd != PROCESS_SESSION && !table().contains_key(&fd) {
        return Err(SessionError::NoSession(fd));
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
