//! `likwid-accessD --service`: one root-started service per node instead of a setuid daemon
//! per user. It opens the device files once, listens on `/run/likwid-access/socket` (0666:
//! authorisation is per connection, from the kernel's peer credentials and `service.conf`),
//! keeps no capability after that (a LIKWID client's PCI numbering comes from the relay,
//! which reads the client's maps as the client's own uid), and serves every client on a
//! thread of its own (a small pool of them waits in accept), placed on the client's CPUs.
//! Sessions write only on their cgroup's CPUs, never on a CPU another session programs, and
//! are journaled on disk so even a SIGKILLed service restores at its next start.

mod admin;
#[cfg(test)]
mod concurrent_tests;
mod config;
mod conn;
mod core;
mod journal;
mod load;
mod placement;
pub mod protocol;
mod ratelimit;
mod scope;
mod serve;
mod session;
#[cfg(test)]
mod tests;

use self::core::Core;
use crate::engine::Machine;
use crate::policy::pci::Numbering;
use crate::root::Root;
use load::Loaded;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use nix::sys::stat::{fchmodat, FchmodatFlags, Mode};
use protocol::{CONFIG_PATH, JOURNAL_DIR, RUN_DIR, SOCKET_PATH};
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Connections at once, and per uid: a user who opens many cannot starve the others.
const MAX_CONNECTIONS: usize = 1024;
const MAX_PER_UID: usize = 128;

/// What every connection thread shares.
pub struct Service {
    core: Mutex<Core>,
    config: Mutex<Arc<Loaded>>,
    /// The numbering for a LIKWID client whose relay does not tell (site file, installed library).
    fallback_numbering: (Numbering, String),
    lock_path: PathBuf,
    /// The cgroup file systems, for each client's cpuset.
    cgroup_mounts: Vec<scope::CgroupMount>,
    slots: Mutex<HashMap<u32, usize>>,
    /// Refusals and dropped connections, logged at a bounded rate per uid.
    log: ratelimit::RateLimit,
    /// The greeting of every admitted library session: the machine's CPUs, fixed at start
    /// (CPUs onlined later need a restart, as the devices opened at start).
    greeting: Vec<u8>,
    /// Threads in (or about to be in) accept().
    waiting: AtomicUsize,
    /// The CPUs the service runs on, to which a connection thread returns after following its
    /// client (`placement`).
    home_cpus: Option<placement::Home>,
}

impl Service {
    fn core(&self) -> MutexGuard<'_, Core> {
        core::lock(&self.core)
    }

    fn config(&self) -> Arc<Loaded> {
        self.config.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes a connection slot for `uid`, or says why there is none.
    fn take_slot(&self, uid: u32) -> Result<(), String> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = slots.values().sum();
        let mine = slots.get(&uid).copied().unwrap_or(0);
        if total >= MAX_CONNECTIONS {
            return Err(format!("{MAX_CONNECTIONS} connections open"));
        }
        if mine >= MAX_PER_UID {
            return Err(format!("uid {uid} has {MAX_PER_UID} connections open"));
        }
        slots.insert(uid, mine + 1);
        Ok(())
    }

    fn give_slot(&self, uid: u32) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = slots.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                slots.remove(&uid);
            }
        }
    }
}

fn fail(why: impl std::fmt::Display) -> ExitCode {
    log::error!("service not started: {why}");
    eprintln!("likwid-accessD: service not started: {why}");
    ExitCode::FAILURE
}

/// A root-owned directory of this mode that nobody else can write; made if missing.
fn own_directory(path: &Path, mode: u32) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        // The umask (077 since start) narrowed the mode: the socket's directory must be
        // searchable by every user.
        Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(format!("{} must be a directory of root's that only root can write", path.display()));
    }
    Ok(())
}

/// Binds the service socket, replacing a stale one (a service that was killed); refuses when
/// a live service answers there.
fn listen_on(path: &Path) -> Result<UnixListener, String> {
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!("another service is listening on {}", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot remove the stale {}: {e}", path.display()))?;
    }
    let what = |e: nix::Error| format!("{}: {e}", path.display());
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(what)?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path).map_err(what)?).map_err(what)?;
    // Everyone may connect: who may do what is decided per connection.
    fchmodat(None, path, Mode::from_bits_truncate(0o666), FchmodatFlags::NoFollowSymlink)
        .or_else(|_| fchmodat(None, path, Mode::from_bits_truncate(0o666), FchmodatFlags::FollowSymlink))
        .map_err(what)?;
    listen(&fd, Backlog::new(128).expect("valid backlog")).map_err(what)?;
    Ok(UnixListener::from(fd))
}

/// Restores what sessions of a previous run left in the journal, then removes it.
fn replay_journals(core: &mut Core, dir: &Path, lock_path: &Path) {
    for (path, journal) in journal::leftovers(dir) {
        match journal {
            Ok(j) => {
                let engine = core.engine();
                engine.set_numbering(j.numbering);
                let mut lock = crate::lock::LockWatch::for_client(lock_path.to_path_buf(), j.uid);
                let whose = format!("journal {} (uid={} pid={})", path.display(), j.uid, j.pid);
                let restored = core::restore(engine, &mut lock, &j.entries, &whose);
                log::warn!(
                    "{whose}: left by a service that did not stop; restored {restored} of {} registers",
                    j.entries.len()
                );
            }
            Err(why) => log::error!("journal {} unusable ({why}); removed", path.display()),
        }
        if let Err(e) = std::fs::remove_file(&path) {
            log::error!("cannot remove journal {}: {e}", path.display());
        }
    }
}

/// Drops every capability (permitted, effective, bounding), for good, and sets no_new_privs.
/// Nothing after start needs one: the device files are open, the journal and socket are root's
/// own files, cpusets and /proc/PID/cgroup and status are world-readable, and a relayed LIKWID
/// client's numbering comes in its relay's hello.
fn drop_capabilities() -> Result<(), String> {
    let keep = 0u64;
    match crate::sys::keep_only_capabilities(keep) {
        Ok(()) => {}
        // Started without CAP_SETPCAP (a unit that bounds it away): the bounding set is the
        // unit's then; the working sets are still emptied.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            log::warn!("cannot drop the bounding set or lock the securebits without CAP_SETPCAP: {e}");
            crate::sys::set_capabilities(keep).map_err(|e| format!("capset: {e}"))?;
        }
        Err(e) => return Err(format!("cannot drop capabilities: {e}")),
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    let caps = crate::daemon::effective_capabilities();
    if caps.is_none_or(|c| c & !keep != 0) {
        return Err(format!("capabilities left after the drop: CapEff {caps:x?}"));
    }
    Ok(())
}

fn signal_thread(service: Arc<Service>, signals: SigSet, socket: PathBuf) {
    loop {
        match signals.wait() {
            Ok(Signal::SIGHUP) => match load::load(Path::new(CONFIG_PATH)) {
                Ok(loaded) => {
                    log::info!("SIGHUP: configuration reloaded from {}", loaded.source);
                    *service.config.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
                }
                Err(why) => log::error!("SIGHUP: keeping the old configuration: {why}"),
            },
            Ok(sig) => {
                let _ = std::fs::remove_file(&socket);
                let ended = service.core().stop();
                log::info!("{sig}: ended {ended} sessions, registers restored; exiting");
                std::process::exit(0);
            }
            Err(e) => log::error!("sigwait: {e}"),
        }
    }
}

/// The service's main; `secure` is AT_SECURE: a setuid or file-capability start is refused.
pub fn run(secure: bool) -> ExitCode {
    if secure || !nix::unistd::getuid().is_root() || !nix::unistd::geteuid().is_root() {
        return fail(
            "--service runs as root, started by systemd or by hand, never through a setuid or file-capability binary",
        );
    }
    let loaded = match load::load(Path::new(CONFIG_PATH)) {
        Ok(l) => l,
        Err(why) => return fail(why),
    };
    let root = Root::from_env(false);
    let lock_path = root.lock_file();
    // The lock is judged per client; opening must not fail because a job's user holds it.
    let lock_owner = nix::sys::stat::stat(&lock_path).map_or(0, |s| s.st_uid);
    let machine = match Machine::open(&root, lock_owner) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let fallback_numbering = crate::site::likwid_client_numbering(&root);
    let mut core = Core::new(machine.serve_as(Numbering::Likwid54), PathBuf::from(JOURNAL_DIR));
    for (dir, mode) in [(RUN_DIR, 0o755), (JOURNAL_DIR, 0o700)] {
        if let Err(why) = own_directory(Path::new(dir), mode) {
            return fail(why);
        }
    }
    replay_journals(&mut core, Path::new(JOURNAL_DIR), &lock_path);
    let listener = match listen_on(Path::new(SOCKET_PATH)) {
        Ok(l) => l,
        Err(why) => return fail(why),
    };
    if let Err(why) = drop_capabilities() {
        let _ = std::fs::remove_file(SOCKET_PATH);
        return fail(why);
    }
    let mut signals = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(sig);
    }
    // Blocked before any thread starts, so every thread inherits it and only sigwait sees them.
    if let Err(e) = signals.thread_block() {
        return fail(format!("cannot block signals: {e}"));
    }
    log::info!(
        "service listening on {SOCKET_PATH}: {} CPUs, {}, config {}, keeps no capability",
        core.sockets().len(),
        core.engine().policy().source,
        loaded.source
    );
    let cgroup_mounts = scope::cgroup_mounts();
    match cgroup_mounts.iter().find(|m| !m.v2 && m.controllers.iter().any(|c| c == "cpuset")) {
        Some(m) => log::info!("cpu scope: cgroup v1 cpuset hierarchy at {}", m.mount_point.display()),
        None => match cgroup_mounts.iter().find(|m| m.v2) {
            Some(m) => {
                log::info!("cpu scope: cgroup v2 at {} (where its cpuset controller is on)", m.mount_point.display())
            }
            None => log::warn!("cpu scope cannot apply: no cgroup file system is mounted"),
        },
    }
    let greeting = conn::greeting(Ok(&core.sockets()));
    let service = Arc::new(Service {
        core: Mutex::new(core),
        config: Mutex::new(Arc::new(loaded)),
        fallback_numbering,
        lock_path,
        cgroup_mounts,
        slots: Mutex::new(HashMap::new()),
        log: ratelimit::RateLimit::default(),
        greeting,
        waiting: AtomicUsize::new(0),
        home_cpus: placement::own_cpus(),
    });
    let handler = service.clone();
    if let Err(e) = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || signal_thread(handler, signals, PathBuf::from(SOCKET_PATH)))
    {
        return fail(format!("cannot start the signal thread: {e}"));
    }
    let listener = Arc::new(listener);
    // The pool is full before the first connection: otherwise the first ones each start the
    // thread that accepts after them on their way to their first reply.
    for _ in 1..WAITING {
        spawn_acceptor(&service, &listener);
    }
    accept_loop(&service, &listener, true);
    ExitCode::FAILURE
}

/// Connection threads kept waiting in accept(), the main thread among them: a connect finds a
/// thread ready instead of paying for a new one (a clone, its stack, the Rust runtime's
/// per-thread set-up, one more wake-up: about half of the 0.35 ms from connect to first reply
/// before). Three, so connects back to back find one even while the previous connection's
/// thread is still ending its session (with two, one such connect in two started a thread on
/// its way to its first reply: strace). Threads beyond this exit when their connection ends.
const WAITING: usize = 3;

/// Starts a thread of the pool; false when it could not be started.
fn spawn_acceptor(service: &Arc<Service>, listener: &Arc<UnixListener>) -> bool {
    let (shared, listening) = (service.clone(), listener.clone());
    let spawned = std::thread::Builder::new()
        .name("conn".into())
        .stack_size(256 << 10)
        .spawn(move || accept_loop(&shared, &listening, false));
    spawned.map_err(|e| log::error!("cannot start a connection thread: {e}")).is_ok()
}

/// One thread of the pool: accepts a connection, makes sure another thread accepts while it
/// serves this one, serves it, and accepts again (the kernel wakes one waiter per connection:
/// net/unix/af_unix.c, unix_accept, an exclusive wait). The main thread is one of them and
/// never exits; a spawned one exits when enough others wait already.
fn accept_loop(service: &Arc<Service>, listener: &Arc<UnixListener>, main: bool) {
    loop {
        if main {
            service.waiting.fetch_add(1, Ordering::SeqCst);
        } else if service
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < WAITING).then_some(n + 1))
            .is_err()
        {
            return;
        }
        let accepted = listener.accept();
        let others_waiting = service.waiting.fetch_sub(1, Ordering::SeqCst) > 1;
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and the like: wait for connections to end rather than spin.
                log::error!("accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let peer = match conn::peer_of(&stream) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("closed a connection without peer credentials: {e}");
                continue;
            }
        };
        if let Err(why) = service.take_slot(peer.uid) {
            service.log.warn(peer.uid, &format!("refused connection of uid {} pid {}: {why}", peer.uid, peer.pid));
            continue;
        }
        let uid = peer.uid;
        // Nobody would accept while this connection is served: start the thread that will,
        // or refuse this connection (as when there was a thread per connection and it could
        // not be started) and accept again.
        if !others_waiting && !spawn_acceptor(service, listener) {
            log::error!("refused a connection of uid {uid}: no thread to accept after it");
            service.give_slot(uid);
            continue;
        }
        conn::handle(service, stream, peer);
        service.give_slot(uid);
    }
}
