//! The service socket's hello (shared with the relay and our library; see the README's
//! "Service mode"): 8 bytes, `LKAS`, version 1, mode, a little-endian u16 argument. Pure.
//!
//! - mode 1, session (our library): argument = PCI numbering code (below).
//! - mode 2, hand-over (the relay; one SCM_RIGHTS descriptor with the hello): argument = the
//!   numbering code of the LIKWID client whose socket is handed over, as the relay read it
//!   from the client's `/proc/<pid>/maps`, or 0 when it could not tell (then the site file or
//!   the installed library decides, as for a client that maps no `liblikwid.so.5.N`).
//! - mode 3, admin: argument 0, then one text line.

use crate::policy::pci::Numbering;

/// Where the service listens.
pub const SOCKET_PATH: &str = "/run/likwid-access/socket";
/// The directory of the socket and the journal (0755 root).
pub const RUN_DIR: &str = "/run/likwid-access";
/// Original register values of live sessions, one file per session.
pub const JOURNAL_DIR: &str = "/run/likwid-access/journal";
/// Who may do what.
pub const CONFIG_PATH: &str = "/etc/likwid-access/service.conf";

pub const HELLO_LEN: usize = 8;
const MAGIC: &[u8; 4] = b"LKAS";
const VERSION: u8 = 1;

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    /// Our library: records plus our extensions, in this PCI numbering.
    Session(Numbering),
    /// The relay hands over a LIKWID client's socket (SCM_RIGHTS with the hello), with the PCI
    /// numbering the relay read from that client's `/proc/<pid>/maps` (argument: the session's
    /// codes), or None (argument 0: an older relay, or the maps did not tell).
    HandOver(Option<Numbering>),
    /// `likwid-access service status|reset`: one line in, text lines out.
    Admin,
}

const MODE_SESSION: u8 = 1;
const MODE_HAND_OVER: u8 = 2;
const MODE_ADMIN: u8 = 3;

/// The PCI numbering as the session argument: 0x0502, 0x0503, 0x0504 (major << 8 | minor).
fn numbering_code(n: Numbering) -> u16 {
    match n {
        Numbering::Likwid52 => 0x0502,
        Numbering::Likwid53 => 0x0503,
        Numbering::Likwid54 => 0x0504,
    }
}

fn numbering_of_code(code: u16) -> Option<Numbering> {
    match code {
        0x0502 => Some(Numbering::Likwid52),
        0x0503 => Some(Numbering::Likwid53),
        0x0504 | 0x0505 => Some(Numbering::Likwid54),
        _ => None,
    }
}

impl Hello {
    pub fn encode(self) -> [u8; HELLO_LEN] {
        let (mode, arg) = match self {
            Hello::Session(n) => (MODE_SESSION, numbering_code(n)),
            Hello::HandOver(n) => (MODE_HAND_OVER, n.map_or(0, numbering_code)),
            Hello::Admin => (MODE_ADMIN, 0),
        };
        let mut b = [0u8; HELLO_LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = mode;
        b[6..].copy_from_slice(&arg.to_le_bytes());
        b
    }

    /// The hello, or why it is not one (for the log).
    pub fn decode(b: &[u8; HELLO_LEN]) -> Result<Hello, String> {
        if &b[..4] != MAGIC {
            return Err(format!("not a likwid-access hello (starts {:02x?})", &b[..4]));
        }
        if b[4] != VERSION {
            return Err(format!("hello version {} (this service speaks {VERSION})", b[4]));
        }
        let arg = u16::from_le_bytes([b[6], b[7]]);
        match (b[5], arg) {
            (MODE_SESSION, code) => numbering_of_code(code)
                .map(Hello::Session)
                .ok_or_else(|| format!("unknown PCI numbering code {code:#06x}")),
            (MODE_HAND_OVER, 0) => Ok(Hello::HandOver(None)),
            (MODE_HAND_OVER, code) => numbering_of_code(code)
                .map(|n| Hello::HandOver(Some(n)))
                .ok_or_else(|| format!("unknown PCI numbering code {code:#06x} in a hand-over")),
            (MODE_ADMIN, 0) => Ok(Hello::Admin),
            (MODE_ADMIN, arg) => Err(format!("mode {} takes argument 0, not {arg}", b[5])),
            (mode, _) => Err(format!("unknown mode {mode}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_round_trip() {
        for h in [
            Hello::Session(Numbering::Likwid52),
            Hello::Session(Numbering::Likwid53),
            Hello::Session(Numbering::Likwid54),
            Hello::HandOver(None),
            Hello::HandOver(Some(Numbering::Likwid52)),
            Hello::HandOver(Some(Numbering::Likwid53)),
            Hello::HandOver(Some(Numbering::Likwid54)),
            Hello::Admin,
        ] {
            assert_eq!(Hello::decode(&h.encode()), Ok(h));
        }
        assert_eq!(Hello::HandOver(None).encode(), *b"LKAS\x01\x02\x00\x00");
        assert_eq!(Hello::HandOver(Some(Numbering::Likwid54)).encode(), *b"LKAS\x01\x02\x04\x05");
        // LIKWID 5.5's code, as our library may send it, is 5.4's numbering.
        assert_eq!(Hello::decode(b"LKAS\x01\x02\x05\x05"), Ok(Hello::HandOver(Some(Numbering::Likwid54))));
        assert_eq!(Hello::Session(Numbering::Likwid52).encode(), *b"LKAS\x01\x01\x02\x05");
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for (bytes, needle) in [
            (*b"GET / HT", "not a likwid-access hello"),
            (*b"LKAS\x02\x01\x02\x05", "version 2"),
            (*b"LKAS\x01\x09\x00\x00", "unknown mode 9"),
            (*b"LKAS\x01\x01\x07\x05", "numbering code 0x0507"),
            (*b"LKAS\x01\x02\x01\x00", "numbering code 0x0001 in a hand-over"),
            (*b"LKAS\x01\x02\x06\x05", "numbering code 0x0506 in a hand-over"),
            (*b"LKAS\x01\x03\x00\x01", "argument 0"),
        ] {
            let e = Hello::decode(&bytes).unwrap_err();
            assert!(e.contains(needle), "{bytes:?}: {e}");
        }
    }
}
