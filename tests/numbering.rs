//! LIKWID's own start of the daemon (no arguments, socket /tmp/likwid-<pid>) with clients that
//! have different LIKWID libraries mapped: each connection is answered in the PciDeviceIndex
//! numbering of the library its client loaded, whatever is installed on this machine. The
//! client is tests/support/fake_likwid_client.py: it maps a file named like the library.
#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

use likwid_access::testing::CpuModel;
use likwid_access::testing::Numbering;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DAEMON: &str = env!("CARGO_BIN_EXE_likwid-accessD");
/// MC_CH0_PCI_PMON_CTR0 of a Skylake-SP memory channel (config space offset).
const IMC_CTR0: u32 = 0xA0;

struct Machine(Scratch);

impl Machine {
    fn skx(name: &str) -> Machine {
        let dir = Scratch::new(&format!("numbering-{name}"));
        likwid_access::testing::create_sockets(&dir, CpuModel::by_name("skx").unwrap(), &[0, 1], 2).unwrap();
        Machine(dir)
    }

    /// A file named like LIKWID's library (`liblikwid.so.5.N`), for a client to map.
    fn library(&self, soname: &str) -> PathBuf {
        let dir = self.0.join("lib").join(soname);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(soname);
        std::fs::write(&path, b"\x7fELF not really a library, only its name matters").unwrap();
        path
    }
}

fn client(machine: &Machine, library: Option<&Path>, requests: &[String]) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_likwid_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(DAEMON).arg(library.map_or("-".into(), |p| p.display().to_string()));
    cmd.args(requests).env_clear().env("LIKWID_ACCESS_ROOT", &machine.0).env("LIKWID_ACCESS_DEBUG", "1");
    cmd
}

/// The reply codes, one per request, and the daemon's log (its stderr under LIKWID_ACCESS_DEBUG).
fn replies(out: &Output) -> (Vec<(i32, u64)>, String) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "client failed: {}\nstdout:\n{stdout}\nlog:\n{log}", out.status);
    let codes = stdout
        .lines()
        .map(|l| {
            let (_, reply) = l.split_once(" -> ").expect("reply line");
            let (code, data) = reply.split_once(' ').unwrap();
            (code.parse().unwrap(), u64::from_str_radix(data.trim_start_matches("0x"), 16).unwrap())
        })
        .collect();
    (codes, log)
}

fn imc(numbering: Numbering) -> i32 {
    numbering.index("PCI_IMC_DEVICE_0_CH_0").unwrap()
}

/// CHECK and READ of the first memory channel of socket 1 under 5.4's and 5.2's numbers.
fn imc_requests() -> Vec<String> {
    let (i54, i52) = (imc(Numbering::Likwid54), imc(Numbering::Likwid52));
    vec![
        format!("check:1:{i54}:0"),
        format!("read:1:{i54}:{IMC_CTR0:#x}"),
        format!("check:1:{i52}:0"),
        format!("read:1:{i52}:{IMC_CTR0:#x}"),
    ]
}

const NOERROR: i32 = 0;
const NODEV: i32 = 6;

/// Puts a value in socket 1's first memory channel counter, so a read shows which device it hit.
fn seed_counter(machine: &Machine, value: u64) {
    use std::os::unix::fs::FileExt;
    let devices = machine.0.join("sys/bus/pci/devices");
    for entry in std::fs::read_dir(&devices).unwrap() {
        let dir = entry.unwrap().path();
        let node = std::fs::read_to_string(dir.join("numa_node")).unwrap();
        if dir.to_string_lossy().ends_with(":0a.2") && node.trim() == "1" {
            let config = std::fs::OpenOptions::new().write(true).open(dir.join("config")).unwrap();
            config.write_all_at(&value.to_le_bytes(), u64::from(IMC_CTR0)).unwrap();
            return;
        }
    }
    panic!("no socket-1 device 0a.2 under {}", devices.display());
}

#[test]
fn a_client_with_likwid_5_5_mapped_gets_the_5_4_numbering() {
    let m = Machine::skx("55");
    seed_counter(&m, 0x5555);
    let lib = m.library("liblikwid.so.5.5");
    let (codes, log) = replies(&client(&m, Some(&lib), &imc_requests()).output().unwrap());
    assert_eq!(codes[0], (NOERROR, 0), "CHECK of 5.4's PCI_IMC_DEVICE_0_CH_0; log:\n{log}");
    assert_eq!(codes[1], (NOERROR, 0x5555), "READ of its counter; log:\n{log}");
    assert_eq!(codes[2].0, NODEV, "5.2's IMC number is no SKX device in 5.4's numbering; log:\n{log}");
    assert_eq!(codes[3].0, NODEV, "log:\n{log}");
    assert!(
        log.contains(&format!("speaks LIKWID 5.4 PCI device numbering: it has {} mapped", lib.display())),
        "the log says which library decided:\n{log}"
    );
}

#[test]
fn a_client_with_likwid_5_2_mapped_gets_the_5_2_numbering() {
    let m = Machine::skx("52");
    seed_counter(&m, 0x5252);
    let lib = m.library("liblikwid.so.5.2");
    let (codes, log) = replies(&client(&m, Some(&lib), &imc_requests()).output().unwrap());
    assert_eq!(codes[0].0, NODEV, "5.4's IMC number is no SKX device in 5.2's numbering; log:\n{log}");
    assert_eq!(codes[2], (NOERROR, 0), "log:\n{log}");
    assert_eq!(codes[3], (NOERROR, 0x5252), "log:\n{log}");
}

#[test]
fn two_likwid_versions_at_the_same_time_each_get_their_own_numbering() {
    let m = Machine::skx("both");
    seed_counter(&m, 0xB07);
    let (lib52, lib55) = (m.library("liblikwid.so.5.2"), m.library("liblikwid.so.5.5"));
    // Many requests each, so the two sessions overlap.
    let rounds = |r: Vec<String>| r.iter().cycle().take(400).cloned().collect::<Vec<_>>();
    let a = client(&m, Some(&lib52), &rounds(imc_requests())).spawn_output();
    let b = client(&m, Some(&lib55), &rounds(imc_requests())).spawn_output();
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let ((codes52, log52), (codes55, log55)) = (replies(&a), replies(&b));
    for chunk in codes52.chunks(4) {
        assert_eq!(chunk, [(NODEV, 0), (NODEV, 0), (NOERROR, 0), (NOERROR, 0xB07)], "5.2 client; log:\n{log52}");
    }
    for chunk in codes55.chunks(4) {
        assert_eq!(chunk, [(NOERROR, 0), (NOERROR, 0xB07), (NODEV, 0), (NODEV, 0)], "5.5 client; log:\n{log55}");
    }
}

#[test]
fn a_client_without_a_library_name_gets_the_fallback_and_the_log_says_so() {
    let m = Machine::skx("static");
    let (codes, log) = replies(&client(&m, None, &imc_requests()).output().unwrap());
    assert!(log.contains("maps no liblikwid.so.5.N"), "{log}");
    // The fallback is this machine's: the site file (none here), else the installed library.
    let installed = ["usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib", "usr/local/lib"]
        .iter()
        .flat_map(|d| {
            ["5.2", "5.3", "5.4", "5.5"].map(|v| (Path::new("/").join(d).join(format!("liblikwid.so.{v}")), v))
        })
        .find(|(p, _)| p.exists());
    let numbering = installed.map_or(Numbering::Likwid54, |(_, v)| Numbering::parse(v).unwrap());
    let want_imc = if numbering == Numbering::Likwid52 { 2 } else { 0 };
    assert_eq!(codes[want_imc].0, NOERROR, "fallback {numbering:?}; log:\n{log}");
    assert!(log.contains(&format!("gets LIKWID {} PCI device numbering from", numbering.label())), "{log}");
}

#[test]
fn an_unknown_likwid_version_falls_back_instead_of_guessing() {
    let m = Machine::skx("59");
    let lib = m.library("liblikwid.so.5.9");
    let (_, log) = replies(&client(&m, Some(&lib), &imc_requests()).output().unwrap());
    assert!(log.contains("is LIKWID 5.9, whose numbering is unknown"), "{log}");
}

#[test]
fn the_site_file_decides_when_the_client_does_not_tell_and_only_then() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: a site file is trusted only when root owns it");
        return;
    }
    let m = Machine::skx("site");
    let site = m.0.join("etc/likwid-access");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("pci-numbering"), "5.3\n").unwrap();
    let i53 = imc(Numbering::Likwid53);
    let (codes, log) = replies(&client(&m, None, &[format!("check:1:{i53}:0")]).output().unwrap());
    assert_eq!(codes[0].0, NOERROR, "log:\n{log}");
    assert!(log.contains(&format!("gets LIKWID 5.3 PCI device numbering from site file {}", site.display())), "{log}");
    let lib = m.library("liblikwid.so.5.5");
    let (codes, log) = replies(&client(&m, Some(&lib), &imc_requests()).output().unwrap());
    assert_eq!(codes[0].0, NOERROR, "the client's library comes before the site file; log:\n{log}");
}

/// Runs a command in a thread, returning its output.
trait SpawnOutput {
    fn spawn_output(self) -> std::thread::JoinHandle<Output>;
}

impl SpawnOutput for Command {
    fn spawn_output(mut self) -> std::thread::JoinHandle<Output> {
        std::thread::spawn(move || self.output().unwrap())
    }
}
