//! The LIKWID 5 access record and our private-channel extensions. Pure: bytes <-> values.
//!
//! Layout (x86_64, LIKWID 5.0 … 5.5): `cpu u32, reg u32, data u64, device i32, type i32,
//! errorcode i32`, then 4 bytes of tail padding, 32 bytes in all, native byte order.

/// Size of one record on the wire.
pub const RECORD_LEN: usize = 32;

/// `device` value of the MSR device in every PciDeviceIndex numbering.
pub const MSR_DEV: i32 = 0;

/// A hardware thread: LIKWID's `cpu_id`, Linux's CPU number (`/dev/cpu/N/msr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HwThread(pub u32);

/// A socket (package): `physical id` in /proc/cpuinfo. A record for a PCI uncore device
/// carries the socket in its `cpu` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Socket(pub u32);

/// LIKWID's `PciDeviceIndex`: `MSR` for a hardware thread's MSRs, any other value an uncore
/// device of its socket in some numbering. Any i32 a caller passes, unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceIndex(pub i32);

impl DeviceIndex {
    /// The MSRs of a hardware thread.
    pub const MSR: DeviceIndex = DeviceIndex(MSR_DEV);

    pub fn is_msr(self) -> bool {
        self == DeviceIndex::MSR
    }
}

/// What a record asks for: LIKWID 5's `AccessType` (src/includes/access_client_types.h) and
/// the two types of our private channel. `code` and `from_code` are the one conversion each
/// way between it and a record's `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
    Check,
    Exit,
    /// Our extension: the greeting our daemon sends first on a private channel (`Greeting`).
    /// Never sent to a LIKWID client (they connect through `/tmp/likwid-<pid>` and get no
    /// greeting).
    Hello,
    /// Our extension, private channel only: a header whose `cpu` counts the request records
    /// that follow it. The reply is a header with the same count, then one reply per request,
    /// in order.
    Batch,
}

impl Kind {
    const ALL: [Kind; 6] = [Kind::Read, Kind::Write, Kind::Check, Kind::Exit, Kind::Hello, Kind::Batch];

    /// The record's `type` value.
    pub const fn code(self) -> i32 {
        match self {
            Kind::Read => 0,
            Kind::Write => 1,
            Kind::Check => 2,
            Kind::Exit => 3,
            Kind::Hello => 0x4C41_0001,
            Kind::Batch => 0x4C41_0002,
        }
    }

    /// What a request of `type` value `code` asks for, as log lines say it: `read`, `write`,
    /// `check`, or `request` for anything else.
    pub fn verb(code: i32) -> &'static str {
        match Kind::from_code(code) {
            Some(Kind::Read) => "read",
            Some(Kind::Write) => "write",
            Some(Kind::Check) => "check",
            _ => "request",
        }
    }

    /// The kind a record's `type` value names, if any.
    pub fn from_code(code: i32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// Capability bits in the greeting's `data`.
pub const CAP_BATCH: u64 = 1;
/// Most requests one batch may carry (msr-safe's batch limit is 30 000): bounds the daemon's
/// buffer to 2 MiB however large a count a client claims.
pub const MAX_BATCH: u32 = 65_536;

/// Reply codes (LIKWID 5 `AccessErrorType`).
pub const ERR_NOERROR: i32 = 0;
pub const ERR_UNKNOWN: i32 = 1;
pub const ERR_RESTREG: i32 = 2;
pub const ERR_OPENFAIL: i32 = 3;
pub const ERR_RWFAIL: i32 = 4;
pub const ERR_DAEMONBUSY: i32 = 5;
pub const ERR_NODEV: i32 = 6;
pub const ERR_LOCKED: i32 = 7;

/// LIKWID's name of a reply code, for traces and messages.
pub fn code_name(code: i32) -> &'static str {
    match code {
        ERR_NOERROR => "NOERROR",
        ERR_UNKNOWN => "UNKNOWN",
        ERR_RESTREG => "RESTREG",
        ERR_OPENFAIL => "OPENFAIL",
        ERR_RWFAIL => "RWFAIL",
        ERR_DAEMONBUSY => "DAEMONBUSY",
        ERR_NODEV => "NODEV",
        ERR_LOCKED => "LOCKED",
        _ => "INVALID",
    }
}

/// Version of our private-channel protocol, carried in the greeting's `reg`.
pub const PROTOCOL_VERSION: u32 = 2;
/// Upper bound on a greeting payload (error text or CPU list), so a client never allocates
/// what a broken peer claims.
pub const MAX_GREETING_PAYLOAD: u32 = 1 << 20;

/// One LIKWID 5 `AccessDataRecord`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    pub cpu: u32,
    pub reg: u32,
    pub data: u64,
    pub device: i32,
    pub kind: i32,
    pub errorcode: i32,
}

impl Record {
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..4].copy_from_slice(&self.cpu.to_ne_bytes());
        b[4..8].copy_from_slice(&self.reg.to_ne_bytes());
        b[8..16].copy_from_slice(&self.data.to_ne_bytes());
        b[16..20].copy_from_slice(&self.device.to_ne_bytes());
        b[20..24].copy_from_slice(&self.kind.to_ne_bytes());
        b[24..28].copy_from_slice(&self.errorcode.to_ne_bytes());
        b
    }

    pub fn decode(b: &[u8; RECORD_LEN]) -> Record {
        let u32_at = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().unwrap());
        Record {
            cpu: u32_at(0),
            reg: u32_at(4),
            data: u64::from_ne_bytes(b[8..16].try_into().unwrap()),
            device: u32_at(16) as i32,
            kind: u32_at(20) as i32,
            errorcode: u32_at(24) as i32,
        }
    }

    /// Turns the encoded request `b` into its reply in place: `reply(data, errorcode)` encoded
    /// over it, writing only what differs (data, code, the zeroed tail).
    #[inline]
    pub fn reply_in_place(b: &mut [u8; RECORD_LEN], data: u64, errorcode: i32) {
        b[8..16].copy_from_slice(&data.to_ne_bytes());
        b[24..28].copy_from_slice(&errorcode.to_ne_bytes());
        b[28..32].fill(0);
    }

    /// A request as LIKWID's client builds it: errorcode preset to OPENFAIL (LIKWID 5.2 client).
    pub fn request(kind: Kind, cpu: u32, device: i32, reg: u32, data: u64) -> Record {
        Record { cpu, reg, data, device, kind: kind.code(), errorcode: ERR_OPENFAIL }
    }

    /// The reply to `self`: same addressing, the given data and code.
    pub fn reply(&self, data: u64, errorcode: i32) -> Record {
        Record { data, errorcode, ..*self }
    }
}

/// The greeting our daemon sends on a private channel before anything else, in one record
/// (type `Kind::Hello`) followed by `payload_len` bytes: the CPUs present as (hardware thread,
/// socket) u32 pairs when ready, else a one-line UTF-8 reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// 0: ready; else a positive errno saying why the daemon cannot serve. (The record's
    /// `errorcode`.)
    pub errno: i32,
    /// The length of the payload that follows. (The record's `cpu`.)
    pub payload_len: u32,
    /// `PROTOCOL_VERSION` of the sender. (The record's `reg`.)
    pub version: u32,
    /// Capability bits (`CAP_*`), none in a refusal. (The record's `data`.)
    pub capabilities: u64,
}

impl Greeting {
    /// Our greeting: ready (`errno` 0, with every capability) or a refusal.
    pub fn new(errno: i32, payload_len: usize) -> Greeting {
        Greeting {
            errno,
            payload_len: payload_len as u32,
            version: PROTOCOL_VERSION,
            capabilities: if errno == 0 { CAP_BATCH } else { 0 },
        }
    }

    pub fn record(&self) -> Record {
        Record {
            cpu: self.payload_len,
            reg: self.version,
            data: self.capabilities,
            device: MSR_DEV,
            kind: Kind::Hello.code(),
            errorcode: self.errno,
        }
    }

    /// The greeting `record` carries, if it is one (type `Kind::Hello`; any version).
    pub fn from_record(record: &Record) -> Option<Greeting> {
        (record.kind == Kind::Hello.code()).then_some(Greeting {
            errno: record.errorcode,
            payload_len: record.cpu,
            version: record.reg,
            capabilities: record.data,
        })
    }
}

/// The header of a batch of `count` records (request or reply).
pub fn batch_header(count: u32, errorcode: i32) -> Record {
    Record { cpu: count, reg: 0, data: 0, device: MSR_DEV, kind: Kind::Batch.code(), errorcode }
}

/// Records back to back, as a batch carries them.
pub fn encode_records(records: &[Record]) -> Vec<u8> {
    records.iter().flat_map(|r| r.encode()).collect()
}

/// The records in `bytes` (a multiple of RECORD_LEN).
pub fn decode_records(bytes: &[u8]) -> Vec<Record> {
    bytes.chunks_exact(RECORD_LEN).map(|c| Record::decode(c.try_into().unwrap())).collect()
}

/// (hardware thread, socket) pairs as a greeting payload.
pub fn encode_cpu_list(cpus: &[(HwThread, Socket)]) -> Vec<u8> {
    cpus.iter().flat_map(|(c, s)| c.0.to_ne_bytes().into_iter().chain(s.0.to_ne_bytes())).collect()
}

pub fn decode_cpu_list(payload: &[u8]) -> Option<Vec<(HwThread, Socket)>> {
    if payload.len() % 8 != 0 {
        return None;
    }
    let word = |b: &[u8]| u32::from_ne_bytes(b.try_into().unwrap());
    Some(payload.chunks_exact(8).map(|c| (HwThread(word(&c[..4])), Socket(word(&c[4..])))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_matches_likwid_offsets() {
        let r = Record { cpu: 1, reg: 0xC001_0201, data: 0x1122_3344_5566_7788, device: -5, kind: 1, errorcode: 3 };
        let b = r.encode();
        assert_eq!(&b[0..4], &1u32.to_ne_bytes());
        assert_eq!(&b[4..8], &0xC001_0201u32.to_ne_bytes());
        assert_eq!(&b[8..16], &0x1122_3344_5566_7788u64.to_ne_bytes());
        assert_eq!(&b[16..20], &(-5i32).to_ne_bytes());
        assert_eq!(&b[20..24], &1i32.to_ne_bytes());
        assert_eq!(&b[24..28], &3i32.to_ne_bytes());
        assert_eq!(&b[28..32], &[0, 0, 0, 0]);
        assert_eq!(Record::decode(&b), r);
    }

    #[test]
    fn a_reply_in_place_is_the_encoded_reply() {
        let req = Record { cpu: 7, reg: 0xC001_0201, data: 0x55, device: 3, kind: 0, errorcode: ERR_OPENFAIL };
        let mut b = req.encode();
        b[28..32].copy_from_slice(&[0xAA; 4]); // a client's tail padding is not echoed
        Record::reply_in_place(&mut b, 0x1122_3344_5566_7788, ERR_NODEV);
        assert_eq!(b, req.reply(0x1122_3344_5566_7788, ERR_NODEV).encode());
    }

    #[test]
    fn kinds_round_trip_and_unknown_types_are_none() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(Kind::from_code(77), None);
        assert_eq!(Kind::from_code(3), Some(Kind::Exit));
        assert_eq!(Kind::from_code(0x4C41_0001), Some(Kind::Hello));
    }

    #[test]
    fn greeting_round_trips_through_its_record() {
        let g = Greeting::new(0, 24);
        assert_eq!((g.payload_len, g.version, g.capabilities), (24, PROTOCOL_VERSION, CAP_BATCH));
        let r = Record::decode(&g.record().encode());
        assert_eq!(Greeting::from_record(&r), Some(g));
        assert_eq!(Greeting::new(libc::EACCES, 5).capabilities, 0);
        assert_eq!(Greeting::from_record(&Record::request(Kind::Read, 0, 0, 0, 0)), None);
    }

    #[test]
    fn batch_records_round_trip_in_order() {
        let recs: Vec<Record> =
            (0..5).map(|i| Record::request(Kind::Read, i, MSR_DEV, 0x10 + i, u64::from(i))).collect();
        let bytes = encode_records(&recs);
        assert_eq!(bytes.len(), 5 * RECORD_LEN);
        assert_eq!(decode_records(&bytes), recs);
        assert_eq!(batch_header(7, 0).cpu, 7);
    }

    #[test]
    fn cpu_list_round_trips_and_rejects_ragged_payload() {
        let cpus = [(0, 0), (3, 0), (7, 1), (255, 1)].map(|(t, s)| (HwThread(t), Socket(s)));
        assert_eq!(decode_cpu_list(&encode_cpu_list(&cpus)).unwrap(), cpus);
        assert_eq!(decode_cpu_list(&[1, 2, 3, 4]), None);
    }
}
