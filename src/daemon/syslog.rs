//! A `log` backend that writes to syslog (LOG_USER, ident `likwid-accessD`), LIKWID's only
//! log channel for its daemon.

use crate::sys;

struct Syslog;

impl log::Log for Syslog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let priority = match record.level() {
            log::Level::Error => libc::LOG_ERR,
            log::Level::Warn => libc::LOG_WARNING,
            log::Level::Info => libc::LOG_INFO,
            log::Level::Debug | log::Level::Trace => libc::LOG_DEBUG,
        };
        sys::syslog(priority, &record.args().to_string());
    }

    fn flush(&self) {}
}

static LOGGER: Syslog = Syslog;

/// Routes `log` to syslog; `debug` also copies every message to stderr and logs requests.
pub fn init(debug: bool) {
    sys::openlog(c"likwid-accessD", debug);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
}
