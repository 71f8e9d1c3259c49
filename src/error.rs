//! The one error type for access outcomes, with the one conversion to a wire code and the one
//! conversion to a negative errno for C.

use crate::wire;
use std::fmt;

/// Why an access did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessError {
    /// The register policy denies this access.
    Denied { reg: u32, write: bool },
    /// cpu (or socket) index or device the daemon does not serve.
    NoDevice,
    /// Lock file held by another user (LIKWID's `/var/run/likwid.lock`).
    Locked,
    /// The device file could not be opened.
    OpenFailed,
    /// The read or write itself failed (EIO for a missing MSR, EPERM from msr.allow_writes).
    ReadWrite(i32),
    /// Service mode: another session is programming this CPU (LIKWID's DAEMONBUSY).
    Busy,
    /// A request type we do not know.
    UnknownRequest,
    /// The peer sent something other than a reply to our request, or the channel broke.
    Channel(String),
}

impl AccessError {
    /// LIKWID 5 reply code.
    pub fn wire_code(&self) -> i32 {
        match self {
            AccessError::Denied { .. } => wire::ERR_RESTREG,
            AccessError::NoDevice => wire::ERR_NODEV,
            AccessError::Locked => wire::ERR_LOCKED,
            AccessError::OpenFailed => wire::ERR_OPENFAIL,
            AccessError::ReadWrite(_) => wire::ERR_RWFAIL,
            AccessError::Busy => wire::ERR_DAEMONBUSY,
            AccessError::UnknownRequest | AccessError::Channel(_) => wire::ERR_UNKNOWN,
        }
    }

    /// A reply code back to an error, as LIKWID's client maps them (facts §1).
    pub fn from_wire_code(code: i32, reg: u32, write: bool) -> Option<AccessError> {
        Some(match code {
            wire::ERR_NOERROR => return None,
            wire::ERR_RESTREG => AccessError::Denied { reg, write },
            wire::ERR_NODEV => AccessError::NoDevice,
            wire::ERR_LOCKED => AccessError::Locked,
            wire::ERR_OPENFAIL => AccessError::OpenFailed,
            wire::ERR_RWFAIL => AccessError::ReadWrite(libc::EIO),
            wire::ERR_DAEMONBUSY => AccessError::Busy,
            _ => AccessError::UnknownRequest,
        })
    }

    /// Negative errno for the C API (LIKWID's values, plus -ENOLCK for a held lock and
    /// -ENOTCONN for a daemon that is gone).
    pub fn errno(&self) -> i32 {
        -match self {
            AccessError::Denied { .. } => libc::EPERM,
            AccessError::NoDevice => libc::ENODEV,
            AccessError::Locked => libc::ENOLCK,
            AccessError::OpenFailed => libc::ENXIO,
            AccessError::ReadWrite(_) => libc::EIO,
            AccessError::Busy => libc::EBUSY,
            AccessError::UnknownRequest => libc::EFAULT,
            AccessError::Channel(_) => libc::ENOTCONN,
        }
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::Denied { reg, write } => {
                let what = if *write { "write to" } else { "read of" };
                write!(f, "{what} register {reg:#x} denied by policy")
            }
            AccessError::NoDevice => write!(f, "no such cpu or device"),
            AccessError::Locked => write!(f, "access locked by the lock file's owner"),
            AccessError::OpenFailed => write!(f, "device file could not be opened"),
            AccessError::ReadWrite(e) => {
                write!(f, "register access failed: {}", std::io::Error::from_raw_os_error(*e))
            }
            AccessError::Busy => write!(f, "another session is programming this CPU"),
            AccessError::UnknownRequest => write!(f, "unknown request type"),
            AccessError::Channel(why) => write!(f, "daemon connection lost: {why}"),
        }
    }
}

/// Why a daemon (or direct mode) cannot serve at all. Carried as a positive errno and a
/// one-line message that names the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    pub errno: i32,
    pub message: String,
}

impl StartError {
    pub fn new(errno: i32, message: impl Into<String>) -> StartError {
        StartError { errno, message: message.into() }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_map_to_likwid_errnos() {
        let cases = [
            (wire::ERR_RESTREG, -libc::EPERM),
            (wire::ERR_OPENFAIL, -libc::ENXIO),
            (wire::ERR_RWFAIL, -libc::EIO),
            (wire::ERR_NODEV, -libc::ENODEV),
            (wire::ERR_LOCKED, -libc::ENOLCK),
            (wire::ERR_UNKNOWN, -libc::EFAULT),
            (wire::ERR_DAEMONBUSY, -libc::EBUSY),
            (99, -libc::EFAULT),
        ];
        for (code, errno) in cases {
            let e = AccessError::from_wire_code(code, 0x10, false).unwrap();
            assert_eq!(e.errno(), errno, "code {code}");
        }
        assert_eq!(AccessError::from_wire_code(wire::ERR_NOERROR, 0, false), None);
    }

    #[test]
    fn every_error_survives_the_wire() {
        let all = [
            AccessError::Denied { reg: 7, write: true },
            AccessError::NoDevice,
            AccessError::Locked,
            AccessError::OpenFailed,
            AccessError::ReadWrite(libc::EIO),
            AccessError::Busy,
        ];
        for e in all {
            assert_eq!(AccessError::from_wire_code(e.wire_code(), 7, true), Some(e));
        }
    }
}
