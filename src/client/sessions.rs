//! LIKWID 3's per-socket sessions: `accessClient_init` starts one daemon per call and hands out
//! the connection's file descriptor, and `msr_tread`/`msr_twrite` name the session by it, so a
//! thread-per-socket program talks to its own daemon without sharing a lock with the others.
//! The descriptor `-1` names the process-wide session the HPM functions use.

use super::conn::Connection;
use super::machine::{self, Machine};
use super::turnstile::Turnstile;
use super::{daemon_access, daemon_check, launch};
use crate::engine::Op;
use crate::error::{AccessError, StartError};
use crate::sys;
use crate::wire::{DeviceIndex, HwThread};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The descriptor that names the process-wide session (LIKWID 3's "no socket").
pub const PROCESS_SESSION: i32 = -1;

/// One daemon of our own (LIKWID 3's per-socket session; the tool's connection), with the
/// machine its greeting described. Not the daemon's `daemon::session::Session`, the state of
/// one connection inside the daemon.
pub struct OwnDaemon {
    conn: Connection,
    machine: Machine,
}

impl OwnDaemon {
    /// Launches a daemon for this session. Prints nothing: callers decide how to report.
    pub fn start() -> Result<OwnDaemon, StartError> {
        let (conn, machine) = launch::launch(sys::secure_exec())?;
        Ok(OwnDaemon { conn, machine })
    }

    /// The machine's hardware threads, in order.
    pub fn threads(&self) -> Vec<HwThread> {
        self.machine.threads().collect()
    }

    pub fn pid(&self) -> u32 {
        self.conn.pid()
    }

    /// One read or write, addressed as the HPM functions address it.
    pub fn access(&mut self, thread: HwThread, device: DeviceIndex, reg: u32, op: Op) -> Result<u64, AccessError> {
        let cpu = self.machine.record_cpu(thread, device, None)?;
        daemon_access(&mut self.conn, cpu, device, reg, op)
    }

    /// LIKWID's CHECK: Ok when the daemon can use `device` on `thread`.
    pub fn check(&mut self, thread: HwThread, device: DeviceIndex) -> Result<(), AccessError> {
        let cpu = self.machine.record_cpu(thread, device, None)?;
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
    session: Mutex<Option<OwnDaemon>>,
}

/// Open sessions by descriptor. The table lock is held only to look an entry up; each session
/// has its own lock, so sessions of different threads never wait for each other.
static SESSIONS: Mutex<BTreeMap<i32, Arc<Entry>>> = Mutex::new(BTreeMap::new());
/// The session `msr_read`/`msr_write` use (set by `msr_init`).
static DEFAULT_SESSION: AtomicI32 = AtomicI32::new(PROCESS_SESSION);

fn table() -> MutexGuard<'static, BTreeMap<i32, Arc<Entry>>> {
    SESSIONS.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock(entry: &Entry) -> MutexGuard<'_, Option<OwnDaemon>> {
    entry.session.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a session (daemon mode) and returns its descriptor. In direct mode there is no
/// daemon to start: the answer is `PROCESS_SESSION`, as LIKWID 3 left the socket unset.
pub fn open() -> Result<i32, AccessError> {
    if super::with_state(|s| s.mode) == super::Mode::Direct {
        return Ok(PROCESS_SESSION);
    }
    let session = OwnDaemon::start()?;
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
pub fn access(fd: i32, cpu: i32, device: DeviceIndex, reg: u32, op: Op) -> Result<u64, AccessError> {
    // The device first, as `Machine::record_cpu` orders its checks (LIKWID's order): a bad
    // device with a bad cpu is EFAULT here too, not the ERANGE of a negative cpu.
    machine::served(device)?;
    let thread = HwThread(u32::try_from(cpu).map_err(|_| AccessError::OutOfRange)?);
    if fd == PROCESS_SESSION {
        super::add_thread(thread)?;
        return Ok(match op {
            Op::Read => super::read(thread, device, reg)?,
            Op::Write(v) => super::write(thread, device, reg, v).map(|()| 0)?,
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
    session.access(thread, device, reg, op)
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
