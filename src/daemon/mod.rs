//! `likwid-accessD`: the privileged side. Started with no arguments it is LIKWID 5's daemon on
//! the wire (`/tmp/likwid-<pid>`); started by our library it serves a private socketpair.
//! Either way it opens every device file first, then drops to the caller's identity for good.

mod audit;
mod client_library;
mod compat;
mod privilege;
mod relay;
mod serve;
mod session;
mod syslog;
mod workers;

pub(crate) use audit::TokenBucket;
pub(crate) use serve::{drain, read_record};

pub use privilege::effective_capabilities;
pub use relay::SERVICE_SOCKET_ENV;
pub use serve::{serve, Ended, Peer};
pub use session::Session;

use crate::engine::{Engine, Machine};
use crate::error::StartError;
use crate::policy::pci::Numbering;
use crate::root::Root;
use crate::sys;
use crate::wire;
use nix::sys::socket::{getsockopt, sockopt};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

/// The argument our library passes: the channel is the socket on standard input.
pub const CHANNEL_ARG: &str = "--channel=stdin";
/// The argument that tells which PciDeviceIndex numbering our library speaks.
pub const NUMBERING_ARG: &str = "--pci-numbering=";
/// Run as the node's service (`src/service/`), started by root.
pub const SERVICE_ARG: &str = "--service";
/// Non-secure-exec only: copy the log to stderr and log every request.
pub const DEBUG_ENV: &str = "LIKWID_ACCESS_DEBUG";
/// Non-secure-exec only: append one line per served request to this file.
pub const TRACE_ENV: &str = "LIKWID_ACCESS_TRACE";
/// Non-secure-exec only: run batches on pinned per-CPU workers even on simulated register
/// stores (they are used on the kernel's msr devices anyway). For tests.
pub const WORKERS_ENV: &str = "LIKWID_ACCESS_WORKERS";

enum Mode {
    /// LIKWID 5's own start: no arguments, serve `/tmp/likwid-<pid>`.
    Likwid,
    /// Started by our library with a socketpair on stdin, speaking this PCI numbering.
    Private(Numbering),
    /// `--service`: root's long-running service on /run/likwid-access/socket.
    Service,
}

/// A mode with what it needs to know before the privilege drop.
enum Serving {
    /// LIKWID's clients: the numbering for one that does not tell its own, and its source.
    Likwid((Numbering, String)),
    Private(Numbering),
}

/// The only arguments there are: none (LIKWID's start) or ours. The numbering is no override:
/// it only names devices, and every device is checked by its type's rules either way.
fn parse_args(args: &[String]) -> Result<Mode, String> {
    let unknown = |a: &str| format!("unknown argument `{a}` (likwid-accessD is started by the LIKWID library)");
    match args {
        [] => Ok(Mode::Likwid),
        [a] if a == SERVICE_ARG => Ok(Mode::Service),
        [a, n] if a == CHANNEL_ARG => {
            let value = n.strip_prefix(NUMBERING_ARG).ok_or_else(|| unknown(n))?;
            Numbering::parse(value).map(Mode::Private).ok_or_else(|| unknown(n))
        }
        [a, ..] => Err(unknown(a)),
    }
}

/// An environment switch, honoured only outside secure-exec; an ignored attempt is logged.
fn switch(name: &str, secure: bool) -> Option<std::ffi::OsString> {
    let value = std::env::var_os(name)?;
    if secure {
        log::warn!("ignoring {name} under secure-exec");
        return None;
    }
    Some(value)
}

/// Opens the request trace as the unprivileged caller (it names a file of theirs).
fn open_trace(secure: bool) -> Option<Box<dyn Write>> {
    let path = switch(TRACE_ENV, secure)?;
    match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        Ok(file) => Some(Box::new(std::io::LineWriter::new(file))),
        Err(e) => {
            log::error!("cannot open trace file {}: {e}", std::path::Path::new(&path).display());
            None
        }
    }
}

/// The daemon binary's entry, called from its own C `main` (src/bin/likwid-accessD.rs) instead
/// of through std's runtime set-up, which it does the needed part of (`sys::runtime_setup`).
/// Returns the exit status: `main`'s, or 101 after a panic, as std's runtime would.
pub fn entry() -> i32 {
    sys::runtime_setup();
    let Ok(code) = std::panic::catch_unwind(main) else { return 101 };
    let _ = std::io::stdout().flush();
    // ExitCode has no accessor for its number; it is one of the 256 a u8 makes.
    (0..=u8::MAX).find(|&c| ExitCode::from(c) == code).map_or(1, i32::from)
}

pub fn main() -> ExitCode {
    let secure = sys::secure_exec();
    // Arguments are the caller's bytes: not valid UTF-8 is an unknown argument, not a panic.
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let private = args.first().is_some_and(|a| a == CHANNEL_ARG);
    let debug = !secure && std::env::var_os(DEBUG_ENV).is_some();
    let sanitized = privilege::sanitize_process(private, debug || !secure);
    syslog::init(debug);
    if let Err(e) = sanitized {
        log::error!("refusing to serve: cannot close inherited file descriptors: {e}");
        eprintln!("likwid-accessD: cannot close inherited file descriptors: {e}");
        return ExitCode::FAILURE;
    }
    if secure && std::env::var_os(DEBUG_ENV).is_some() {
        log::warn!("ignoring {DEBUG_ENV} under secure-exec");
    }
    let mode = match parse_args(&args) {
        Ok(Mode::Service) => return crate::service::run(secure),
        Ok(mode) => mode,
        Err(why) => {
            log::error!("{why}");
            eprintln!("likwid-accessD: {why}");
            return ExitCode::from(2);
        }
    };
    // LIKWID's start of a binary without privileges while the service runs: hand over, exit.
    if let (Mode::Likwid, Some(service)) = (&mode, relay::service_socket(secure)) {
        return relay::run(&service);
    }
    let root = Root::from_env(secure);
    let real_uid = nix::unistd::getuid().as_raw();
    let machine = Machine::open(&root, real_uid);
    if let Ok(machine) = &machine {
        log::debug!("serving uid {real_uid} with {} on {} CPUs", machine.policy().source, machine.cpu_count());
    }
    // A LIKWID client's numbering is learnt from the client once it has connected; what the
    // site file and the installed libraries say (the fallback) is read now, while privileged.
    let serving = match mode {
        Mode::Likwid => Serving::Likwid(crate::site::likwid_client_numbering(&root)),
        Mode::Private(numbering) => Serving::Private(numbering),
        Mode::Service => unreachable!("the service returned above"),
    };
    // Never talk to a client with more than the caller's own rights.
    if let Err(e) = privilege::drop_to_real_user() {
        log::error!("{e}");
        return ExitCode::FAILURE;
    }
    let trace = open_trace(secure);
    let workers = switch(WORKERS_ENV, secure).is_some();
    let ended = match serving {
        Serving::Private(numbering) => serve_private(machine.map(|m| m.serve_as(numbering)), real_uid, trace, workers),
        Serving::Likwid(fallback) => {
            machine.and_then(|machine| compat::serve_socket(machine, &fallback, real_uid, trace))
        }
    };
    match ended {
        Ok(Ended::Exit) | Ok(Ended::Eof) => ExitCode::SUCCESS,
        Ok(Ended::Broken(e)) => {
            log::error!("client channel broke: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            log::error!("cannot serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The peer's identity; only the user who started the daemon may talk to it.
fn checked_peer(stream: &UnixStream, real_uid: u32) -> Result<Peer, StartError> {
    let cred = getsockopt(stream, sockopt::PeerCredentials)
        .map_err(|e| StartError::new(libc::EPROTO, format!("no peer credentials on the channel: {e}")))?;
    if cred.uid() != real_uid {
        log::warn!("refused peer uid {} pid {}: the daemon serves uid {real_uid} only", cred.uid(), cred.pid());
        return Err(StartError::new(
            libc::EACCES,
            format!("peer uid {} pid {} is not the user {} who started the daemon", cred.uid(), cred.pid(), real_uid),
        ));
    }
    Ok(Peer { uid: cred.uid(), pid: cred.pid() })
}

fn private_channel() -> Result<UnixStream, StartError> {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| StartError::new(libc::EBADF, format!("no channel on stdin: {e}")))?;
    let is_stream = matches!(getsockopt(&fd, sockopt::SockType), Ok(nix::sys::socket::SockType::Stream));
    if !is_stream {
        return Err(StartError::new(libc::ENOTSOCK, format!("{CHANNEL_ARG}: stdin is not a stream socket")));
    }
    Ok(UnixStream::from(fd))
}

fn send_greeting(stream: &mut UnixStream, result: &Result<Engine, StartError>) -> std::io::Result<()> {
    let (errno, payload) = match result {
        Ok(engine) => {
            let cpus: Vec<_> = engine.sockets().iter().map(|&(t, s)| (wire::HwThread(t), wire::Socket(s))).collect();
            (0, wire::encode_cpu_list(&cpus))
        }
        Err(e) => (e.errno, e.message.clone().into_bytes()),
    };
    let mut frame = wire::Greeting::new(errno, payload.len()).record().encode().to_vec();
    frame.extend_from_slice(&payload);
    stream.write_all(&frame)
}

fn serve_private(
    engine: Result<Engine, StartError>,
    real_uid: u32,
    trace: Option<Box<dyn Write>>,
    workers: bool,
) -> Result<Ended, StartError> {
    let mut stream = private_channel()?;
    let peer = checked_peer(&stream, real_uid)?;
    send_greeting(&mut stream, &engine).map_err(|e| StartError::new(libc::EPIPE, format!("greeting: {e}")))?;
    let mut engine = engine?;
    let workers = workers || engine.on_kernel_devices();
    Ok(serve(&mut stream, Session::new(&mut engine, peer, trace, workers), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_channel_argument_is_known() {
        assert!(matches!(parse_args(&[]), Ok(Mode::Likwid)));
        let ours = [CHANNEL_ARG.to_string(), format!("{NUMBERING_ARG}5.2")];
        assert!(matches!(parse_args(&ours), Ok(Mode::Private(Numbering::Likwid52))));
        for bad in [
            vec!["--root=/tmp".to_string()],
            vec![CHANNEL_ARG.into()],
            vec![CHANNEL_ARG.into(), "x".into()],
            vec![CHANNEL_ARG.into(), format!("{NUMBERING_ARG}9")],
        ] {
            assert!(parse_args(&bad).is_err(), "{bad:?}");
        }
    }
}
