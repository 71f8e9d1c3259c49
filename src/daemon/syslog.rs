//! A `log` backend that sends to syslog (`/dev/log`, LOG_USER, ident `likwid-accessD`), the
//! daemon's only log channel, as LIKWID's. Sends never block: a stuck or absent syslog daemon
//! loses records, it never stalls serving (glibc's syslog() would block on a full socket).

use crate::sys;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

const IDENT: &str = "likwid-accessD";
const LOG_USER: u8 = 1 << 3;
/// Longest message text sent (bytes, after escaping): RFC 3164 caps a whole record at 1024.
const MAX_MESSAGE: usize = 900;
const TRUNCATED: &str = "...[truncated]";

/// The message as one line of printable text: control characters (a newline would forge a
/// second record) and backslashes escaped, and cut at `MAX_MESSAGE` bytes, because messages
/// carry text the caller chose (arguments, environment values, paths).
pub(crate) fn escape(message: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    for c in message.chars() {
        let start = out.len();
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "{}", c.escape_unicode());
            }
            c => out.push(c),
        }
        if out.len() > MAX_MESSAGE {
            out.truncate(start);
            out.push_str(TRUNCATED);
            break;
        }
    }
    out
}

struct Syslog {
    socket: Mutex<Option<UnixDatagram>>,
    to_stderr: bool,
}

fn connect() -> Option<UnixDatagram> {
    let socket = UnixDatagram::unbound().ok()?;
    socket.connect("/dev/log").ok()?;
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

fn severity(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

impl log::Log for Syslog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = escape(&record.args().to_string());
        let pri = LOG_USER | severity(record.level());
        let line = format!("<{pri}>{} {IDENT}[{}]: {message}", sys::syslog_timestamp(), std::process::id());
        let mut socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        // A syslog daemon that restarted drops our association: reconnect once.
        if socket.as_ref().is_none_or(|s| s.send(line.as_bytes()).is_err()) {
            *socket = connect();
            if let Some(s) = socket.as_ref() {
                let _ = s.send(line.as_bytes());
            }
        }
        if self.to_stderr {
            let _ = writeln!(std::io::stderr(), "{IDENT}: {message}");
        }
    }

    fn flush(&self) {}
}

/// Routes `log` to syslog; `debug` also copies every message to stderr and logs requests.
pub fn init(debug: bool) {
    let logger = Box::new(Syslog { socket: Mutex::new(connect()), to_stderr: debug });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(if debug { log::LevelFilter::Debug } else { log::LevelFilter::Info });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_printable_line_of_bounded_length() {
        assert_eq!(escape("ignoring X=/a\nlikwid-accessD[1]: forged"), "ignoring X=/a\\u{a}likwid-accessD[1]: forged");
        assert_eq!(escape("tab\there\r\u{1b}[2J back\\slash"), "tab\\u{9}here\\u{d}\\u{1b}[2J back\\\\slash");
        assert_eq!(escape("plain text, unchanged"), "plain text, unchanged");
        let long = escape(&"\n".repeat(5000));
        assert!(long.len() <= MAX_MESSAGE + TRUNCATED.len() && long.ends_with(TRUNCATED), "{long}");
        assert!(!long.contains('\n'));
        let wide = escape(&"é".repeat(2000));
        assert!(wide.len() <= MAX_MESSAGE + TRUNCATED.len() && wide.starts_with('é'));
    }
}
