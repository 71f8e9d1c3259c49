//! The library's side: which mode, which CPUs were added, and the backend that executes
//! requests (our daemon over a private channel, or the engine in-process for direct mode).
//! One process-wide state behind one lock; fork-safe.

mod batch;
mod conn;
mod handshake;
mod launch;
mod service;
pub mod sessions;
pub use service::in_use as service_in_use;
mod turnstile;

pub use batch::{batch, BatchOp};
pub(crate) use handshake::read_greeting;

/// The PciDeviceIndex numbering of our header (LIKWID 5.2's, as Debian ships), which our
/// library tells our daemon.
pub const PCI_NUMBERING: crate::policy::pci::Numbering = crate::policy::pci::Numbering::Likwid52;
pub use launch::{daemon_path, DAEMON_ENV, INSTALLED_DAEMON};

use crate::engine::{Engine, Op};
use crate::error::{AccessError, StartError};
use crate::root::Root;
use crate::sys;
use crate::wire::{self, Record};
use conn::Connection;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, Once};
use turnstile::Turnstile;

/// LIKWID's access modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Direct,
    Daemon,
}

/// Errors the C API turns into negative errnos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// cpu not on this machine.
    OutOfRange,
    /// cpu on the machine but not added with HPMaddThread.
    NotAdded,
    /// Not a device index we serve.
    BadDevice,
    Access(AccessError),
    Start(StartError),
    /// A batch larger than `wire::MAX_BATCH` operations.
    TooBig(usize),
}

impl ClientError {
    pub fn errno(&self) -> i32 {
        match self {
            ClientError::OutOfRange => -libc::ERANGE,
            ClientError::NotAdded => -libc::ENODEV,
            ClientError::BadDevice => -libc::EFAULT,
            ClientError::Access(e) => e.errno(),
            ClientError::Start(e) => -e.errno,
            ClientError::TooBig(_) => -libc::E2BIG,
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::OutOfRange => write!(f, "cpu not on this machine"),
            ClientError::NotAdded => write!(f, "cpu not added (HPMaddThread)"),
            ClientError::BadDevice => write!(f, "device not served (only the MSRs are)"),
            ClientError::Access(e) => write!(f, "{e}"),
            ClientError::Start(e) => write!(f, "{e}"),
            ClientError::TooBig(n) => write!(f, "a batch of {n} operations exceeds the limit of {}", wire::MAX_BATCH),
        }
    }
}

enum Backend {
    Daemon(Connection),
    Direct(Engine),
}

struct State {
    mode: Mode,
    initialized: bool,
    added: BTreeSet<u32>,
    /// The machine's CPU ids, learnt from the daemon or the device tree.
    /// (hardware thread, socket) of the machine's CPUs, sorted.
    cpus: Vec<(u32, u32)>,
    backend: Option<Backend>,
    /// The process that started `backend`; a forked child must not use it.
    owner_pid: u32,
}

impl State {
    const fn new() -> State {
        State {
            mode: Mode::Daemon,
            initialized: false,
            added: BTreeSet::new(),
            cpus: Vec::new(),
            backend: None,
            owner_pid: 0,
        }
    }

    /// Drops a backend inherited through fork() without touching the parent's daemon.
    fn leave_parents_backend(&mut self) {
        match self.backend.take() {
            Some(Backend::Daemon(conn)) => conn.abandon(),
            Some(Backend::Direct(engine)) => drop(engine),
            None => {}
        }
    }

    fn shut_down(&mut self) {
        match self.backend.take() {
            Some(Backend::Daemon(conn)) => conn.close(),
            Some(Backend::Direct(engine)) => drop(engine),
            None => {}
        }
    }

    fn start(&mut self) -> Result<(), ClientError> {
        if self.backend.is_some() {
            return Ok(());
        }
        let secure = sys::secure_exec();
        let (backend, cpus) = match self.mode {
            Mode::Daemon => {
                let (conn, cpus) = launch::launch(secure).map_err(report)?;
                (Backend::Daemon(conn), cpus)
            }
            Mode::Direct => {
                let engine = Engine::open(&Root::from_env(secure), nix::unistd::getuid().as_raw(), PCI_NUMBERING)
                    .map_err(report)?;
                let cpus = engine.sockets().to_vec();
                (Backend::Direct(engine), cpus)
            }
        };
        self.backend = Some(backend);
        self.cpus = cpus;
        self.owner_pid = std::process::id();
        Ok(())
    }

    /// The socket of `cpu`, when the machine has that CPU.
    fn socket(&self, cpu: u32) -> Option<u32> {
        let i = self.cpus.binary_search_by_key(&cpu, |(c, _)| *c).ok()?;
        Some(self.cpus[i].1)
    }

    fn cpu_slot(&self, cpu: u32) -> Result<(), ClientError> {
        if !self.added.contains(&cpu) {
            return Err(if self.backend.is_some() && self.socket(cpu).is_none() {
                ClientError::OutOfRange
            } else {
                ClientError::NotAdded
            });
        }
        Ok(())
    }

    /// Where an access to `device` on hardware thread `cpu` goes: the record's `cpu`, which
    /// is the thread for MSRs and its socket for PCI uncore devices (as LIKWID's client does).
    fn address(&self, cpu: u32, device: i32) -> Result<u32, ClientError> {
        if device != wire::MSR_DEV && PCI_NUMBERING.name(device).is_none() {
            return Err(ClientError::BadDevice);
        }
        self.cpu_slot(cpu)?;
        match device {
            wire::MSR_DEV => Ok(cpu),
            _ => self.socket(cpu).ok_or(ClientError::OutOfRange),
        }
    }

    fn execute(&mut self, cpu: u32, device: i32, reg: u32, op: Op) -> Result<u64, ClientError> {
        let cpu = self.address(cpu, device)?;
        self.start()?;
        match self.backend.as_mut().expect("started") {
            Backend::Direct(engine) => engine.execute(cpu, device, reg, op).map_err(ClientError::Access),
            Backend::Daemon(conn) => daemon_access(conn, cpu, device, reg, op).map_err(ClientError::Access),
        }
    }
}

/// One access through a daemon connection: the request record, the round trip, the reply
/// code mapped back to an error.
pub(crate) fn daemon_access(
    conn: &mut Connection,
    cpu: u32,
    device: i32,
    reg: u32,
    op: Op,
) -> Result<u64, AccessError> {
    let (kind, data) = match op {
        Op::Read => (wire::TYPE_READ, 0),
        Op::Write(v) => (wire::TYPE_WRITE, v),
    };
    let reply = conn.round_trip(&Record::request(kind, cpu, device, reg, data))?;
    reply_result(&reply)
}

/// LIKWID's CHECK through a daemon connection: Ok when the daemon can use `device` on `cpu`.
pub(crate) fn daemon_check(conn: &mut Connection, cpu: u32, device: i32) -> Result<(), AccessError> {
    reply_result(&conn.round_trip(&Record::request(wire::TYPE_CHECK, cpu, device, 0, 0))?).map(|_| ())
}

/// A reply record as the value read, or the error its code stands for.
fn reply_result(reply: &Record) -> Result<u64, AccessError> {
    match AccessError::from_wire_code(reply.errorcode, reply.reg, reply.kind == wire::TYPE_WRITE) {
        None => Ok(reply.data),
        Some(e) => Err(e),
    }
}

/// Prints the one line that says why access cannot work, then hands the error on.
fn report(e: StartError) -> ClientError {
    eprintln!("likwid-access: {}", e.message);
    ClientError::Start(e)
}

static STATE: Mutex<State> = Mutex::new(State::new());
/// Threads enter `STATE` through this gate, in arrival order (see turnstile.rs for why).
static GATE: Turnstile = Turnstile::new();

thread_local! {
    /// Set while this thread runs inside our API, so a fork from inside (there is none
    /// today, but std may fork to spawn) does not try to take the lock it already holds.
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
    /// The gate's queue and the state's lock, held across fork() by the forking thread.
    static HELD_OVER_FORK: RefCell<Option<(MutexGuard<'static, turnstile::Queue>, MutexGuard<'static, State>)>> =
        const { RefCell::new(None) };
}

fn lock_state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// fork() with another thread mid-request would copy a locked mutex into the child; taking our
// turn and holding the locks across fork keeps the child's copy consistent.
extern "C" fn before_fork() {
    if !IN_CALL.get() {
        GATE.enter();
        HELD_OVER_FORK.set(Some((GATE.freeze(), lock_state())));
    }
}

extern "C" fn after_fork_parent() {
    if HELD_OVER_FORK.take().is_some() {
        GATE.leave();
    }
}

extern "C" fn after_fork_child() {
    if let Some((mut queue, mut state)) = HELD_OVER_FORK.take() {
        queue.forget_waiters();
        drop(queue);
        state.leave_parents_backend();
        drop(state);
        GATE.leave();
    }
}

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    static ATFORK: Once = Once::new();
    ATFORK.call_once(|| sys::atfork(before_fork, after_fork_parent, after_fork_child));
    // Declared before the state's guard, so it drops after it.
    let _turn = GATE.turn();
    let mut state = lock_state();
    if state.backend.is_some() && state.owner_pid != std::process::id() {
        state.leave_parents_backend();
    }
    IN_CALL.set(true);
    let out = f(&mut state);
    IN_CALL.set(false);
    out
}

pub fn set_mode(mode: Mode) {
    with_state(|s| s.mode = mode);
}

pub fn init() {
    with_state(|s| s.initialized = true);
}

pub fn initialized() -> bool {
    with_state(|s| s.initialized)
}

/// Adds a CPU; the first one starts the backend.
pub fn add_thread(cpu: u32) -> Result<(), ClientError> {
    with_state(|s| {
        s.initialized = true;
        s.start()?;
        if s.socket(cpu).is_none() {
            return Err(ClientError::OutOfRange);
        }
        s.added.insert(cpu);
        Ok(())
    })
}

pub fn finalize() {
    with_state(|s| {
        s.shut_down();
        s.added.clear();
        s.cpus.clear();
        s.initialized = false;
    });
}

pub fn read(cpu: u32, device: i32, reg: u32) -> Result<u64, ClientError> {
    with_state(|s| s.execute(cpu, device, reg, Op::Read))
}

pub fn write(cpu: u32, device: i32, reg: u32, value: u64) -> Result<(), ClientError> {
    with_state(|s| s.execute(cpu, device, reg, Op::Write(value)).map(|_| ()))
}

/// Whether `device` on `cpu` is usable (LIKWID's HPMcheck); for a PCI device, whether the
/// socket of `cpu` has it.
pub fn check(device: i32, cpu: u32) -> bool {
    with_state(|s| {
        if s.start().is_err() {
            return false;
        }
        let target = match (device, s.socket(cpu)) {
            (_, None) => return false,
            (wire::MSR_DEV, Some(_)) => cpu,
            (_, Some(_)) if PCI_NUMBERING.name(device).is_none() => return false,
            (_, Some(socket)) => socket,
        };
        let cpu = target;
        match s.backend.as_mut().expect("started") {
            Backend::Direct(engine) => engine.check(cpu, device).is_ok(),
            Backend::Daemon(conn) => daemon_check(conn, cpu, device).is_ok(),
        }
    })
}

/// The daemon's pid while one serves this process (for tools and tests).
pub fn daemon_pid() -> Option<u32> {
    with_state(|s| match &s.backend {
        Some(Backend::Daemon(conn)) => Some(conn.pid()),
        _ => None,
    })
}
