//! The real daemon binary on simulated machines, spoken to over the private channel the
//! library uses, with hand-built records (no client code in the loop).
#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

use likwid_access::testing::wire::{self, Record, RECORD_LEN};
use likwid_access::testing::CpuModel;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const DAEMON: &str = env!("CARGO_BIN_EXE_likwid-accessD");
const CTR0: u32 = 0xC001_0201;
const SYSCFG: u32 = 0xC001_0010;

fn machine(name: &str, model: &str, cpus: &[u32]) -> Scratch {
    let dir = Scratch::new(&format!("it-{name}"));
    likwid_access::testing::create(&dir, CpuModel::by_name(model).unwrap(), cpus).unwrap();
    dir
}

fn spawn(root: &Path) -> (UnixStream, Child) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = Command::new(DAEMON)
        .args(["--channel=stdin", "--pci-numbering=5.2"])
        .env_clear()
        .env("LIKWID_ACCESS_ROOT", root)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .unwrap();
    ours.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    (ours, child)
}

fn greeting(s: &mut UnixStream) -> (Record, Vec<u8>) {
    let mut b = [0u8; RECORD_LEN];
    s.read_exact(&mut b).unwrap();
    let hello = Record::decode(&b);
    assert_eq!(hello.kind, wire::Kind::Hello.code());
    let mut payload = vec![0u8; hello.cpu as usize];
    s.read_exact(&mut payload).unwrap();
    (hello, payload)
}

fn ask(s: &mut UnixStream, kind: i32, cpu: u32, device: i32, reg: u32, data: u64) -> Record {
    s.write_all(&Record { kind, ..Record::request(wire::Kind::Read, cpu, device, reg, data) }.encode()).unwrap();
    let mut b = [0u8; RECORD_LEN];
    s.read_exact(&mut b).unwrap();
    Record::decode(&b)
}

#[test]
fn greeting_lists_non_consecutive_cpus_and_hostile_records_get_errors() {
    let root = machine("hostile", "zen3", &[0, 4, 9]);
    let (mut s, mut child) = spawn(&root);
    let (hello, payload) = greeting(&mut s);
    assert_eq!(hello.errorcode, 0, "{}", String::from_utf8_lossy(&payload));
    let cpus: Vec<(u32, u32)> = wire::decode_cpu_list(&payload).unwrap().iter().map(|(t, s)| (t.0, s.0)).collect();
    assert_eq!(cpus, vec![(0, 0), (4, 0), (9, 0)]);

    let w = ask(&mut s, wire::Kind::Write.code(), 9, 0, CTR0, 0xFFFF_0000_1234);
    assert_eq!((w.errorcode, w.data), (wire::ERR_NOERROR, 0));
    let cases = [
        (wire::Kind::Read.code(), u32::MAX, 0, CTR0, wire::ERR_NODEV),
        (wire::Kind::Read.code(), 1, 0, CTR0, wire::ERR_NODEV),
        (wire::Kind::Read.code(), 0, -5, CTR0, wire::ERR_NODEV),
        (wire::Kind::Read.code(), 0, 100_000, CTR0, wire::ERR_NODEV),
        (77, 0, 0, CTR0, wire::ERR_UNKNOWN),
        (wire::Kind::Hello.code(), 0, 0, CTR0, wire::ERR_UNKNOWN),
        (wire::Kind::Write.code(), 0, 0, SYSCFG, wire::ERR_RESTREG),
        (wire::Kind::Read.code(), 0, 0, 0xC000_0080, wire::ERR_RESTREG),
        (wire::Kind::Check.code(), 4, 0, 0, wire::ERR_NOERROR),
        (wire::Kind::Check.code(), 5, 0, 0, wire::ERR_NODEV),
    ];
    for (kind, cpu, device, reg, want) in cases {
        let r = ask(&mut s, kind, cpu, device, reg, 0);
        assert_eq!(r.errorcode, want, "type {kind} cpu {cpu:#x} device {device} reg {reg:#x}");
        assert_eq!((r.cpu, r.reg, r.kind), (cpu, reg, kind), "reply echoes the request");
    }
    let r = ask(&mut s, wire::Kind::Read.code(), 9, 0, CTR0, 0);
    assert_eq!((r.errorcode, r.data), (wire::ERR_NOERROR, 0xFFFF_0000_1234), "still serving");
    s.write_all(&Record::request(wire::Kind::Exit, 0, 0, 0, 0).encode()).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Started with stdout and stderr closed (the daemon runs its own `main`, not std's runtime,
/// which would reopen them), the daemon still opens them on /dev/null first: else a register
/// file would take descriptor 1 or 2 and the debug log would be written into register 0.
#[test]
fn closed_standard_descriptors_never_become_device_files() {
    let root = machine("closed-stdio", "zen3", &[0, 1]);
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "exec \"$0\" --channel=stdin --pci-numbering=5.2 >&- 2>&-", DAEMON])
        .env_clear()
        .env("LIKWID_ACCESS_ROOT", &*root)
        .env("LIKWID_ACCESS_DEBUG", "1")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .unwrap();
    ours.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let (hello, payload) = greeting(&mut ours);
    assert_eq!(hello.errorcode, 0, "{}", String::from_utf8_lossy(&payload));
    let r = ask(&mut ours, wire::Kind::Read.code(), 1, 0, CTR0, 0);
    assert_eq!(r.errorcode, wire::ERR_NOERROR);
    ours.write_all(&Record::request(wire::Kind::Exit, 0, 0, 0, 0).encode()).unwrap();
    assert!(child.wait().unwrap().success());
    for cpu in [0, 1] {
        let mut head = [0u8; 4096];
        let store = std::fs::File::open(root.join(format!("dev/cpu/{cpu}/msr"))).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&store, &mut head, 0).unwrap();
        assert!(head.iter().all(|b| *b == 0), "cpu {cpu}: {:?}", String::from_utf8_lossy(&head[..80]));
    }
}

#[test]
fn daemon_that_cannot_serve_says_why_in_its_greeting() {
    let root = machine("unsupported", "zen4", &[0]);
    let info = std::fs::read_to_string(root.join("proc/cpuinfo")).unwrap();
    std::fs::write(root.join("proc/cpuinfo"), info.replace("cpu family\t: 25", "cpu family\t: 20")).unwrap();
    let (mut s, mut child) = spawn(&root);
    let (hello, payload) = greeting(&mut s);
    let text = String::from_utf8(payload).unwrap();
    assert_eq!(hello.errorcode, libc::ENOTSUP, "{text}");
    assert!(text.contains("unsupported CPU") && text.contains("family 0x14"), "{text}");
    assert!(!child.wait().unwrap().success());
}

#[test]
fn client_vanishing_mid_session_ends_the_daemon_and_restores_counters_not_settings() {
    let root = machine("vanish", "skx", &[0, 1]);
    let (mut s, mut child) = spawn(&root);
    greeting(&mut s);
    let r = ask(&mut s, wire::Kind::Write.code(), 1, 0, 0x1A4, 0xFF);
    assert_eq!(r.errorcode, wire::ERR_NOERROR, "prefetcher control is writable on SKX");
    let r = ask(&mut s, wire::Kind::Write.code(), 1, 0, 0xC1, 0x1234);
    assert_eq!(r.errorcode, wire::ERR_NOERROR, "PMC0 is writable on SKX");
    drop(s);
    assert!(child.wait().unwrap().success(), "EOF is a normal end");
    let store = std::fs::File::open(root.join("dev/cpu/1/msr")).unwrap();
    let reg = |r: u64| {
        let mut v = [0u8; 8];
        std::os::unix::fs::FileExt::read_exact_at(&store, &mut v, 8 * r).unwrap();
        u64::from_le_bytes(v)
    };
    assert_eq!(reg(0xC1), 0, "the counter is restored after EOF without EXIT");
    assert_eq!(reg(0x1A4), 0xF, "the prefetcher setting persists (likwid-features sends no EXIT)");
}

/// LIKWID's timeline mode rewrites IA32_PERF_GLOBAL_CTRL (write mask 0x7_0000_00FF on SKX) twice
/// per CPU per interval: every write after the first takes the daemon's short path for writes
/// to registers already journaled. Each still keeps the bits outside the mask, and the value
/// restored after a vanished client is the one before the first write, not a later one.
#[test]
fn repeated_masked_writes_keep_other_bits_and_restore_the_first_original() {
    const GLOBAL_CTRL: u32 = 0x38F;
    let root = machine("timeline", "skx", &[0, 1]);
    let store = std::fs::OpenOptions::new().read(true).write(true).open(root.join("dev/cpu/1/msr")).unwrap();
    let at = 8 * u64::from(GLOBAL_CTRL);
    let original = 1u64 << 40 | 0x3; // bit 40 is outside the mask: someone else's
    std::os::unix::fs::FileExt::write_all_at(&store, &original.to_le_bytes(), at).unwrap();
    let (mut s, mut child) = spawn(&root);
    greeting(&mut s);
    for round in 0..5u64 {
        for value in [0, 0x7 | 1 << 41] {
            let r = ask(&mut s, wire::Kind::Write.code(), 1, 0, GLOBAL_CTRL, value);
            assert_eq!(r.errorcode, wire::ERR_NOERROR, "round {round}: write {value:#x}");
            let r = ask(&mut s, wire::Kind::Read.code(), 1, 0, GLOBAL_CTRL, 0);
            assert_eq!(r.data, 1 << 40 | (value & 0x7_0000_00FF), "round {round}: after writing {value:#x}");
        }
    }
    drop(s);
    assert!(child.wait().unwrap().success(), "EOF is a normal end");
    let mut v = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&store, &mut v, at).unwrap();
    assert_eq!(u64::from_le_bytes(v), original, "restored to the value before the first write");
}

#[test]
fn unknown_arguments_are_refused() {
    let out = Command::new(DAEMON).arg("--root=/tmp").env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument `--root=/tmp`"));
}

/// The daemon links its unwinder statically (build.rs `daemon_unwinder`): a panic must still
/// unwind to `daemon::entry`'s catch_unwind, run destructors on the way and exit 101, not abort.
/// The panic here is std's own: `eprintln!` to a pipe nobody reads fails with EPIPE (SIGPIPE is
/// ignored) and panics while the daemon refuses an unknown argument.
#[test]
fn a_panic_unwinds_to_exit_status_101() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(DAEMON).arg("--bogus").env_clear().stdin(Stdio::null()).stderr(writer).status().unwrap();
    assert_eq!(status.code(), Some(101), "{status:?}");
}

#[test]
fn greeting_announces_batches_and_an_oversized_batch_ends_the_session() {
    let root = machine("batch", "zen4", &[0, 1]);
    let (mut s, mut child) = spawn(&root);
    let (hello, _) = greeting(&mut s);
    assert_eq!(hello.data & wire::CAP_BATCH, wire::CAP_BATCH);
    let reqs = [Record::request(wire::Kind::Write, 1, 0, CTR0, 42), Record::request(wire::Kind::Read, 1, 0, CTR0, 0)];
    let mut frame = wire::batch_header(2, 0).encode().to_vec();
    frame.extend_from_slice(&wire::encode_records(&reqs));
    s.write_all(&frame).unwrap();
    let mut b = [0u8; RECORD_LEN * 3];
    s.read_exact(&mut b).unwrap();
    let replies = wire::decode_records(&b);
    assert_eq!((replies[0].kind, replies[0].cpu), (wire::Kind::Batch.code(), 2));
    assert_eq!((replies[2].errorcode, replies[2].data), (wire::ERR_NOERROR, 42));

    s.write_all(&wire::batch_header(wire::MAX_BATCH + 1, 0).encode()).unwrap();
    let mut h = [0u8; RECORD_LEN];
    s.read_exact(&mut h).unwrap();
    assert_eq!(Record::decode(&h).errorcode, wire::ERR_UNKNOWN);
    assert_eq!(s.read(&mut h).unwrap(), 0, "the daemon closes the session");
    assert!(!child.wait().unwrap().success());
    let store = std::fs::File::open(root.join("dev/cpu/1/msr")).unwrap();
    let mut v = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&store, &mut v, 8 * u64::from(CTR0)).unwrap();
    assert_eq!(u64::from_le_bytes(v), 0, "the session's write was restored");
}
