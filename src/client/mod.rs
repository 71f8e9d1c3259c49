//! The library's side: which mode, which CPUs were added, and the backend that executes
//! requests (our daemon over a private channel, or the engine in-process for direct mode).
//! One process-wide state behind one lock; fork-safe.

mod batch;
mod conn;
mod handshake;
mod launch;
mod machine;
mod service;
pub mod sessions;
pub use service::in_use as service_in_use;
mod turnstile;

pub use batch::{batch, BatchOp, BatchSlot};
pub(crate) use handshake::read_greeting;

/// The PciDeviceIndex numbering of our header (LIKWID 5.2's, as Debian ships), which our
/// library tells our daemon.
pub const HEADER_NUMBERING: crate::policy::pci::Numbering = crate::policy::pci::Numbering::Likwid52;
pub use launch::{daemon_path, DAEMON_ENV};

use crate::engine::{Engine, Op};
use crate::error::AccessError;
use crate::root::Root;
use crate::sys;
use crate::wire::{DeviceIndex, HwThread, Kind, Record};
use conn::Connection;
use machine::Machine;
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

enum Backend {
    Daemon(Connection),
    Direct(Engine),
}

struct State {
    mode: Mode,
    initialized: bool,
    added: BTreeSet<HwThread>,
    /// The machine's CPUs, learnt from the daemon or the device tree.
    machine: Machine,
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
            machine: Machine::EMPTY,
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

    fn start(&mut self) -> Result<(), AccessError> {
        if self.backend.is_some() {
            return Ok(());
        }
        let secure = sys::secure_exec();
        let (backend, machine) = match self.mode {
            Mode::Daemon => {
                let (conn, machine) = launch::launch(secure)?;
                (Backend::Daemon(conn), machine)
            }
            Mode::Direct => {
                let engine = Engine::open(&Root::from_env(secure), nix::unistd::getuid().as_raw(), HEADER_NUMBERING)?;
                let machine = Machine::from_raw(engine.sockets());
                (Backend::Direct(engine), machine)
            }
        };
        self.backend = Some(backend);
        self.machine = machine;
        self.owner_pid = std::process::id();
        Ok(())
    }

    /// The record's `cpu` for an HPM access: `device` on an added `thread`.
    fn address(&self, thread: HwThread, device: DeviceIndex) -> Result<u32, AccessError> {
        self.machine.record_cpu(thread, device, Some(&self.added))
    }

    fn execute(&mut self, thread: HwThread, device: DeviceIndex, reg: u32, op: Op) -> Result<u64, AccessError> {
        let cpu = self.address(thread, device)?;
        self.start()?;
        match self.backend.as_mut().expect("started") {
            Backend::Direct(engine) => engine.execute(cpu, device.0, reg, op),
            Backend::Daemon(conn) => daemon_access(conn, cpu, device, reg, op),
        }
    }
}

/// The request record for `op` on `device` register `reg`, addressed to `cpu` (from
/// `Machine::record_cpu`): the one conversion from an operation to a record.
fn request(op: Op, cpu: u32, device: DeviceIndex, reg: u32) -> Record {
    let (kind, data) = match op {
        Op::Read => (Kind::Read, 0),
        Op::Write(v) => (Kind::Write, v),
    };
    Record::request(kind, cpu, device.0, reg, data)
}

/// One access through a daemon connection: the request record, the round trip, the reply
/// code mapped back to an error.
pub(crate) fn daemon_access(
    conn: &mut Connection,
    cpu: u32,
    device: DeviceIndex,
    reg: u32,
    op: Op,
) -> Result<u64, AccessError> {
    reply_result(&conn.round_trip(&request(op, cpu, device, reg))?)
}

/// LIKWID's CHECK through a daemon connection: Ok when the daemon can use `device` on `cpu`.
pub(crate) fn daemon_check(conn: &mut Connection, cpu: u32, device: DeviceIndex) -> Result<(), AccessError> {
    reply_result(&conn.round_trip(&Record::request(Kind::Check, cpu, device.0, 0, 0))?).map(|_| ())
}

/// A reply record as the value read, or the error its code stands for.
fn reply_result(reply: &Record) -> Result<u64, AccessError> {
    match AccessError::from_wire_code(reply.errorcode, reply.reg, reply.kind == Kind::Write.code()) {
        None => Ok(reply.data),
        Some(e) => Err(e),
    }
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
pub fn add_thread(thread: HwThread) -> Result<(), AccessError> {
    with_state(|s| {
        s.initialized = true;
        s.start()?;
        if !s.machine.has(thread) {
            return Err(AccessError::OutOfRange);
        }
        s.added.insert(thread);
        Ok(())
    })
}

pub fn finalize() {
    with_state(|s| {
        s.shut_down();
        s.added.clear();
        s.machine = Machine::EMPTY;
        s.initialized = false;
    });
}

pub fn read(thread: HwThread, device: DeviceIndex, reg: u32) -> Result<u64, AccessError> {
    with_state(|s| s.execute(thread, device, reg, Op::Read))
}

pub fn write(thread: HwThread, device: DeviceIndex, reg: u32, value: u64) -> Result<(), AccessError> {
    with_state(|s| s.execute(thread, device, reg, Op::Write(value)).map(|_| ()))
}

/// Whether `device` on `cpu` is usable (LIKWID's HPMcheck); for a PCI device, whether the
/// socket of `cpu` has it.
pub fn check(device: DeviceIndex, thread: HwThread) -> Result<(), AccessError> {
    with_state(|s| {
        s.start()?;
        let cpu = s.machine.record_cpu(thread, device, None)?;
        match s.backend.as_mut().expect("started") {
            Backend::Direct(engine) => engine.check(cpu, device.0),
            Backend::Daemon(conn) => daemon_check(conn, cpu, device),
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
