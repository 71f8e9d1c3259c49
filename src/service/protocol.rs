//! The service socket's hello (shared with the relay and our library; see the README's
//! "Service mode"): 8 bytes, `LKAS`, version 1, mode, a little-endian u16 argument. Pure.

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
    /// The relay hands over a LIKWID client's socket (SCM_RIGHTS with the hello).
    HandOver,
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
            Hello::HandOver => (MODE_HAND_OVER, 0),
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
            (MODE_HAND_OVER, 0) => Ok(Hello::HandOver),
            (MODE_ADMIN, 0) => Ok(Hello::Admin),
            (MODE_HAND_OVER | MODE_ADMIN, arg) => Err(format!("mode {} takes argument 0, not {arg}", b[5])),
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
            Hello::HandOver,
            Hello::Admin,
        ] {
            assert_eq!(Hello::decode(&h.encode()), Ok(h));
        }
        assert_eq!(Hello::HandOver.encode(), *b"LKAS\x01\x02\x00\x00");
        assert_eq!(Hello::Session(Numbering::Likwid52).encode(), *b"LKAS\x01\x01\x02\x05");
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for (bytes, needle) in [
            (*b"GET / HT", "not a likwid-access hello"),
            (*b"LKAS\x02\x01\x02\x05", "version 2"),
            (*b"LKAS\x01\x09\x00\x00", "unknown mode 9"),
            (*b"LKAS\x01\x01\x07\x05", "numbering code 0x0507"),
            (*b"LKAS\x01\x02\x01\x00", "argument 0"),
            (*b"LKAS\x01\x03\x00\x01", "argument 0"),
        ] {
            let e = Hello::decode(&bytes).unwrap_err();
            assert!(e.contains(needle), "{bytes:?}: {e}");
        }
    }
}
