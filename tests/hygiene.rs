//! Process hygiene of the daemon binary at start: what a caller hands it (descriptors,
//! argument bytes) never reaches the serving daemon or crashes it. Its own test binary: it
//! places a descriptor at a fixed number, which no parallel test may be using.
#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

use likwid_access::testing::CpuModel;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const DAEMON: &str = env!("CARGO_BIN_EXE_likwid-accessD");
/// Where the test puts the descriptor the daemon inherits.
const STRAY_FD: i32 = 377;

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("hygiene-{name}"))
}

/// An LD_PRELOAD library whose close_range always fails, as on kernels before 5.9 or under
/// a seccomp filter that forbids it.
fn failing_close_range(dir: &Path) -> PathBuf {
    let src = dir.join("no_close_range.c");
    std::fs::write(&src, "#include <errno.h>\nint close_range(unsigned a, unsigned b, int f)\n{ (void)a; (void)b; (void)f; errno = ENOSYS; return -1; }\n").unwrap();
    let lib = dir.join("no_close_range.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc).args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).status().unwrap();
    assert!(status.success(), "cannot build the close_range shim");
    lib
}

#[test]
fn inherited_descriptors_are_closed_even_when_close_range_fails() {
    let dir = scratch("fds");
    let root = dir.join("machine");
    likwid_access::testing::create(&root, CpuModel::by_name("zen3").unwrap(), &[0, 1]).unwrap();
    let shim = failing_close_range(&dir);
    let secret = std::fs::File::create(dir.join("callers-file")).unwrap();
    // dup2 leaves close-on-exec off: the daemon inherits the descriptor.
    let stray = nix::unistd::dup2(secret.as_raw_fd(), STRAY_FD).unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut child = Command::new(DAEMON)
        .args(["--channel=stdin", "--pci-numbering=5.4"])
        .env_clear()
        .env("LIKWID_ACCESS_ROOT", &root)
        .env("LD_PRELOAD", &shim)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .unwrap();
    nix::unistd::close(stray).unwrap();
    ours.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut hello = [0u8; likwid_access::testing::wire::RECORD_LEN];
    std::io::Read::read_exact(&mut &ours, &mut hello).expect("the daemon greets");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    drop(ours);
    let _ = child.wait();
    assert!(!fds.contains(&STRAY_FD.to_string()), "the daemon kept the caller's descriptor {STRAY_FD}: {fds:?}");
}

#[test]
fn an_argument_that_is_not_utf8_is_refused_not_a_crash() {
    let out = Command::new(DAEMON)
        .arg(std::ffi::OsStr::from_bytes(b"--channel=\xff"))
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument"));
}
