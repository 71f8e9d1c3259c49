//! The relay (issue 11, item 5): an unprivileged `likwid-accessD` started as LIKWID starts it
//! (tests/support/fake_likwid_client.py: fork + exec, connect to /tmp/likwid-<pid>) hands the
//! client's connection to the service. The service here is a fake written in this test: it
//! receives the hello and the descriptor, checks whose connection it is, answers, and then
//! answers LIKWID records on the handed-over socket itself.
//! Run as root, the client and the relay run as `nobody` (root would be privileged).

use likwid_access::testing::SERVICE_SOCKET_ENV;
use nix::sys::socket::{getsockopt, recvmsg, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials};
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DAEMON: &str = env!("CARGO_BIN_EXE_likwid-accessD");
const NOBODY: u32 = 65534;

/// A scratch directory, removed however the test ends (a failed assertion too).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

/// A directory every user can reach, with a socket every user may connect to.
fn fake_service(name: &str) -> (Scratch, UnixListener) {
    let dir = std::env::temp_dir().join(format!("likwid-relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("socket");
    let listener = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    listener.set_nonblocking(true).unwrap();
    (Scratch(dir), listener)
}

/// Waits up to `secs` for the relay's connection.
fn accept_within(listener: &UnixListener, secs: u64) -> Option<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok((s, _)) = listener.accept() {
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// What the fake service learnt from one hand-over.
struct HandOver {
    hello: Vec<u8>,
    relay: UnixCredentials,
    client: Option<(UnixStream, UnixCredentials)>,
}

fn receive(relay: &UnixStream) -> HandOver {
    let mut buf = [0u8; 64];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(relay.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(f) = c {
            fds.extend(f);
        }
    }
    let len = msg.bytes;
    assert!(fds.len() <= 1, "the hello carries exactly one descriptor, got {fds:?}");
    let client = fds.first().map(|&fd| {
        // SAFETY: the descriptor was just received with SCM_RIGHTS and nothing else owns it.
        let s = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let cred = getsockopt(&s, sockopt::PeerCredentials).unwrap();
        (s, cred)
    });
    HandOver { hello: buf[..len].to_vec(), relay: getsockopt(relay, sockopt::PeerCredentials).unwrap(), client }
}

/// The fake LIKWID client as the user who runs it (nobody under root), with `env`, mapping
/// no LIKWID library.
fn likwid_client(requests: &[&str], env: &[(&str, &Path)]) -> std::process::Child {
    likwid_client_mapping(Path::new("-"), requests, env)
}

/// The fake LIKWID client mapping `library` (`-`: none) as the loader would.
fn likwid_client_mapping(library: &Path, requests: &[&str], env: &[(&str, &Path)]) -> std::process::Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_likwid_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(DAEMON).arg(library).args(requests);
    cmd.env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if nix::unistd::getuid().is_root() {
        cmd.uid(NOBODY).gid(NOBODY); // std drops the supplementary groups when root sets a uid
    }
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    cmd.spawn().unwrap()
}

/// The client's output once it exits; killed (and the test failed) after 30 s.
fn finish(mut child: std::process::Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the LIKWID client did not finish within 30 s: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn client_uid() -> u32 {
    if nix::unistd::getuid().is_root() {
        NOBODY
    } else {
        nix::unistd::getuid().as_raw()
    }
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split_whitespace().nth(1)?.parse().ok()
}

fn text(out: &Output) -> String {
    format!("stdout: {} stderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn assert_no_socket_left(relay_pid: i32) {
    let path = format!("/tmp/likwid-{relay_pid}");
    assert!(!Path::new(&path).exists(), "{path} left behind");
}

/// LIKWID 5's 32-byte record: cpu, reg, data, device, type, errorcode (LIKWID 5.5.1 src/includes/access_client_types.h, AccessDataRecord).
fn record(cpu: u32, reg: u32, data: u64, device: i32, kind: i32, code: i32) -> [u8; 32] {
    let mut r = [0u8; 32];
    r[0..4].copy_from_slice(&cpu.to_le_bytes());
    r[4..8].copy_from_slice(&reg.to_le_bytes());
    r[8..16].copy_from_slice(&data.to_le_bytes());
    r[16..20].copy_from_slice(&device.to_le_bytes());
    r[20..24].copy_from_slice(&kind.to_le_bytes());
    r[24..28].copy_from_slice(&code.to_le_bytes());
    r
}

#[test]
fn relay_hands_the_likwid_clients_own_connection_to_the_service() {
    let (dir, listener) = fake_service("ok");
    let socket = dir.join("socket");
    // The client maps LIKWID 5.5's library, as likwid-perfctr does (file content is no matter).
    let library = dir.join("liblikwid.so.5.5");
    std::fs::write(&library, [0u8; 4096]).unwrap();
    std::fs::set_permissions(&library, std::fs::Permissions::from_mode(0o644)).unwrap();
    let child = likwid_client_mapping(&library, &["read:1:0:0xC0010201"], &[(SERVICE_SOCKET_ENV, &socket)]);
    let client_pid = child.id() as i32;
    let relay = accept_within(&listener, 20).expect("the relay never connected to the service");
    let got = receive(&relay);
    // The relay read the client's maps (as the client's uid, no privilege): 5.5 speaks 5.4's
    // numbering, code 0x0504, so the service needs no CAP_SYS_PTRACE to read them.
    assert_eq!(got.hello, b"LKAS\x01\x02\x04\x05", "hello: mode 2, version 1, argument = 5.4 numbering");
    let (mut conn, cred) = got.client.expect("no descriptor came with the hello");
    // The descriptor is the LIKWID client's connection: its peer is the client process.
    assert_eq!((cred.pid(), cred.uid()), (client_pid, client_uid()), "peer of the handed-over socket");
    // The relay is the process LIKWID started (the client's child), running as the client.
    assert_eq!(got.relay.uid(), client_uid());
    assert_eq!(parent_of(got.relay.pid()), Some(client_pid), "relay pid {} is not the client's child", got.relay.pid());
    (&relay).write_all(&[0]).unwrap();
    drop(relay);
    // The fake service serves LIKWID's wire on the handed-over socket.
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = [0u8; 32];
    conn.read_exact(&mut req).unwrap();
    assert_eq!(&req[0..8], &record(1, 0xC001_0201, 0, 0, 0, 3)[0..8], "the client's READ arrived on it");
    conn.write_all(&record(1, 0xC001_0201, 0x1234_5678, 0, 0, 0)).unwrap();
    conn.read_exact(&mut req).unwrap();
    assert_eq!(i32::from_le_bytes(req[20..24].try_into().unwrap()), 3, "then EXIT");
    drop(conn);
    let out = finish(child);
    assert!(out.status.success(), "client (and relay, its exit status) failed: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "read:1:0:0xC0010201 -> 0 0x12345678", "{}", text(&out));
    assert_no_socket_left(got.relay.pid());
}

#[test]
fn refused_hand_over_fails_the_relay_and_leaves_no_socket() {
    let (dir, listener) = fake_service("refused");
    let socket = dir.join("socket");
    let child = likwid_client(&["read:0:0:0xC0010201"], &[(SERVICE_SOCKET_ENV, &socket)]);
    let relay = accept_within(&listener, 20).expect("the relay never connected to the service");
    let got = receive(&relay);
    assert!(got.client.is_some());
    // A client that maps no liblikwid.so.5.N: argument 0, the service's fallback decides.
    assert_eq!(got.hello, b"LKAS\x01\x02\x00\x00", "hello: mode 2, version 1, argument 0");
    (&relay).write_all(&[libc::EACCES as u8]).unwrap();
    drop(got.client);
    let out = finish(child);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("daemon closed the connection (daemon exit 1)"),
        "the relay must close the client's connection and exit 1: {}",
        text(&out)
    );
    assert_no_socket_left(got.relay.pid());
}

#[test]
fn silent_service_is_bounded_and_the_relay_exits_non_zero() {
    let (dir, listener) = fake_service("silent");
    let socket = dir.join("socket");
    let started = Instant::now();
    let child = likwid_client(&["read:0:0:0xC0010201"], &[(SERVICE_SOCKET_ENV, &socket)]);
    let relay = accept_within(&listener, 20).expect("the relay never connected to the service");
    let got = receive(&relay);
    drop(got.client);
    // No answer: the relay gives up on its own (10 s) and closes the client's connection.
    let out = finish(child);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(String::from_utf8_lossy(&out.stderr).contains("(daemon exit 1)"), "{}", text(&out));
    drop(relay);
    assert_no_socket_left(got.relay.pid());
}

#[test]
fn a_simulated_machine_is_served_by_the_daemon_not_relayed() {
    let (dir, listener) = fake_service("sim");
    let socket = dir.join("socket");
    let machine = dir.join("m");
    let model = likwid_access::testing::CpuModel::by_name("zen3").unwrap();
    likwid_access::testing::create(&machine, model, &[0, 1]).unwrap();
    if nix::unistd::getuid().is_root() {
        Command::new("chown").args(["-R", "nobody:"]).arg(&machine).status().unwrap();
    }
    let child = likwid_client(
        &["write:1:0:0xC0010201:0x77", "read:1:0:0xC0010201"],
        &[(SERVICE_SOCKET_ENV, &socket), ("LIKWID_ACCESS_ROOT", &machine)],
    );
    let out = finish(child);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "write:1:0:0xC0010201:0x77 -> 0 0x0\nread:1:0:0xC0010201 -> 0 0x77\n",
        "{}",
        text(&out)
    );
    assert!(accept_within(&listener, 0).is_none(), "the daemon relayed a simulated machine's client");
}

#[test]
fn a_service_whose_backlog_is_full_is_given_up_within_bounds() {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    let dir = Scratch(std::env::temp_dir().join(format!("likwid-relay-full-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&*dir);
    std::fs::create_dir(&*dir).unwrap();
    std::fs::set_permissions(&*dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket_path = dir.join("socket");
    // A service that never accepts, with backlog 0: one pending connection fills it.
    let listener = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    bind(listener.as_raw_fd(), &UnixAddr::new(&socket_path).unwrap()).unwrap();
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let _pending = UnixStream::connect(&socket_path).unwrap();
    let started = Instant::now();
    let child = likwid_client(&["read:0:0:0xC0010201"], &[(SERVICE_SOCKET_ENV, &socket_path)]);
    let out = finish(child);
    assert!(String::from_utf8_lossy(&out.stderr).contains("(daemon exit 1)"), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
}
