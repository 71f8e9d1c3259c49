//! `likwid-accessD`: the privileged side. Started with no arguments it is LIKWID 5's daemon on
//! the wire (`/tmp/likwid-<pid>`); started by our library it serves a private socketpair.

mod compat;
mod serve;
mod syslog;

pub use serve::{answer, serve, Ended, Peer};

use crate::engine::Engine;
use crate::error::StartError;
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
/// Non-secure-exec only: copy the log to stderr and log every request.
pub const DEBUG_ENV: &str = "LIKWID_ACCESS_DEBUG";

enum Mode {
    /// LIKWID 5's own start: no arguments, serve `/tmp/likwid-<pid>`.
    Likwid,
    /// Started by our library with a socketpair on stdin.
    Private,
}

fn parse_args(args: &[String]) -> Result<Mode, String> {
    match args {
        [] => Ok(Mode::Likwid),
        [a] if a == CHANNEL_ARG => Ok(Mode::Private),
        [a, ..] => Err(format!("unknown argument `{a}` (likwid-accessD takes none; it is started by the LIKWID library)")),
    }
}

pub fn main() -> ExitCode {
    let secure = sys::secure_exec();
    syslog::init(!secure && std::env::var_os(DEBUG_ENV).is_some());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match parse_args(&args) {
        Ok(mode) => mode,
        Err(why) => {
            log::error!("{why}");
            eprintln!("likwid-accessD: {why}");
            return ExitCode::from(2);
        }
    };
    let root = Root::from_env(secure);
    let real_uid = nix::unistd::getuid().as_raw();
    let engine = Engine::open(&root, real_uid);
    let ended = match mode {
        Mode::Private => serve_private(engine, real_uid),
        Mode::Likwid => match engine {
            Ok(engine) => compat::serve_socket(engine, real_uid),
            Err(e) => Err(e),
        },
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
    let cred = getsockopt(stream, sockopt::PeerCredentials).map_err(|e| {
        StartError::new(
            libc::EPROTO,
            format!("no peer credentials on the channel: {e}"),
        )
    })?;
    if cred.uid() != real_uid {
        return Err(StartError::new(
            libc::EACCES,
            format!(
                "peer uid {} pid {} is not the user {} who started the daemon",
                cred.uid(),
                cred.pid(),
                real_uid
            ),
        ));
    }
    Ok(Peer {
        uid: cred.uid(),
        pid: cred.pid(),
    })
}

fn private_channel() -> Result<UnixStream, StartError> {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| StartError::new(libc::EBADF, format!("no channel on stdin: {e}")))?;
    let is_stream = matches!(
        getsockopt(&fd, sockopt::SockType),
        Ok(nix::sys::socket::SockType::Stream)
    );
    if !is_stream {
        return Err(StartError::new(
            libc::ENOTSOCK,
            format!("{CHANNEL_ARG}: stdin is not a stream socket"),
        ));
    }
    Ok(UnixStream::from(fd))
}

fn send_greeting(
    stream: &mut UnixStream,
    result: &Result<Engine, StartError>,
) -> std::io::Result<()> {
    let (errno, payload) = match result {
        Ok(engine) => (0, wire::encode_cpu_list(&engine.cpus())),
        Err(e) => (e.errno, e.message.clone().into_bytes()),
    };
    let mut frame = wire::greeting(errno, payload.len()).encode().to_vec();
    frame.extend_from_slice(&payload);
    stream.write_all(&frame)
}

fn serve_private(engine: Result<Engine, StartError>, real_uid: u32) -> Result<Ended, StartError> {
    let mut stream = private_channel()?;
    let peer = checked_peer(&stream, real_uid)?;
    send_greeting(&mut stream, &engine)
        .map_err(|e| StartError::new(libc::EPIPE, format!("greeting: {e}")))?;
    let mut engine = engine?;
    Ok(serve(&mut stream, &mut engine, &peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_channel_argument_is_known() {
        assert!(matches!(parse_args(&[]), Ok(Mode::Likwid)));
        assert!(matches!(
            parse_args(&[CHANNEL_ARG.into()]),
            Ok(Mode::Private)
        ));
        for bad in [
            vec!["--root=/tmp".to_string()],
            vec![CHANNEL_ARG.into(), "x".into()],
        ] {
            assert!(parse_args(&bad).is_err(), "{bad:?}");
        }
    }
}
