//! Intel uncore discovery through the real daemon on simulated Sapphire/Emerald/Granite Rapids
//! machines: FAKE_UNC_* requests reach the right MSR, `/dev/mem` and PCI config locations with
//! their write masks, everything else about a unit is refused and logged, and a hostile table
//! is never followed.
#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

use likwid_access::testing::discovery::{self, FakeReg, Space, Unit, UnitMap};
use likwid_access::testing::wire::{self, Record, RECORD_LEN};
use likwid_access::testing::CpuModel;
use likwid_access::testing::Numbering;
use likwid_access::testing::{layout, table_address, GLOBAL_CTL};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const DAEMON: &str = env!("CARGO_BIN_EXE_likwid-accessD");
const N: Numbering = Numbering::Likwid54;

fn machine(name: &str, model: &str) -> Scratch {
    let dir = Scratch::new(&format!("disc-{name}"));
    likwid_access::testing::create_sockets(&dir, CpuModel::by_name(model).unwrap(), &[0, 1, 2, 3], 2).unwrap();
    dir
}

fn spawn(root: &Path, numbering: &str) -> (UnixStream, Child) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = Command::new(DAEMON)
        .args(["--channel=stdin", &format!("--pci-numbering={numbering}")])
        .env_clear()
        .env("LIKWID_ACCESS_ROOT", root)
        .env("LIKWID_ACCESS_DEBUG", "1")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ours.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut s = ours;
    let mut b = [0u8; RECORD_LEN];
    s.read_exact(&mut b).unwrap();
    let hello = Record::decode(&b);
    let mut payload = vec![0u8; hello.cpu as usize];
    s.read_exact(&mut payload).unwrap();
    assert_eq!(hello.errorcode, 0, "{}", String::from_utf8_lossy(&payload));
    (s, child)
}

/// Ends the session and returns what the daemon logged.
fn finish(s: UnixStream, child: Child) -> String {
    drop(s);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ask(s: &mut UnixStream, kind: i32, socket: u32, device: i32, reg: u32, data: u64) -> Record {
    s.write_all(&Record { kind, ..Record::request(wire::Kind::Read, socket, device, reg, data) }.encode()).unwrap();
    let mut b = [0u8; RECORD_LEN];
    s.read_exact(&mut b).unwrap();
    Record::decode(&b)
}

fn fake(reg: FakeReg) -> u32 {
    reg.encode(N).unwrap()
}

/// The simulated unit `name` `id` of `socket`, and its client device index.
fn unit(model: &str, socket: u32, name: &str, id: u16) -> (Unit, i32) {
    let map = UnitMap::for_model(model).unwrap();
    let kind = map.kinds.iter().find(|k| k.name == name).unwrap();
    let (_, units) = layout(model, socket).unwrap();
    let u = units.into_iter().find(|u| u.box_type == kind.box_type && u.box_id == id).unwrap();
    (u, map.device_of(N, kind.box_type, id).unwrap())
}

fn mem_read(root: &Path, address: u64, len: usize) -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open(root.join("dev/mem")).unwrap().read_exact_at(&mut b[..len], address).unwrap();
    u64::from_le_bytes(b)
}

fn mem_write(root: &Path, address: u64, value: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(root.join("dev/mem")).unwrap();
    f.write_all_at(&value.to_le_bytes(), address).unwrap();
}

fn msr_read(root: &Path, cpu: u32, reg: u64) -> u64 {
    let mut b = [0u8; 8];
    let f = std::fs::File::open(root.join(format!("dev/cpu/{cpu}/msr"))).unwrap();
    f.read_exact_at(&mut b, 8 * reg).unwrap();
    u64::from_le_bytes(b)
}

fn pci_config(root: &Path, box_ctl: u64) -> PathBuf {
    let (domain, bus, devfn) = discovery::pci_address(box_ctl);
    root.join(format!("sys/bus/pci/devices/{domain:04x}:{bus:02x}:{:02x}.{:x}/config", devfn >> 3, devfn & 7))
}

#[test]
fn fake_unc_requests_reach_msr_mmio_and_pci_registers_under_their_masks() {
    let root = machine("reach", "spr");
    let (mut s, child) = spawn(&root, "5.4");
    let (read, write, check) = (wire::Kind::Read.code(), wire::Kind::Write.code(), wire::Kind::Check.code());

    // MSR unit: CHA 3 of socket 1 lives in the MSRs of socket 1's first CPU (2).
    let (cha, cha_dev) = unit("spr", 1, "CHA", 3);
    assert_eq!(ask(&mut s, check, 1, cha_dev, 0, 0).errorcode, wire::ERR_NOERROR);
    let w = ask(&mut s, write, 1, cha_dev, fake(FakeReg::Ctrl(1)), u64::MAX);
    assert_eq!(w.errorcode, wire::ERR_NOERROR);
    let ctl1 = cha.box_ctl + cha.ctl_offset + 1;
    assert_eq!(msr_read(&root, 2, ctl1), 0x00FF_FFFF_FF95_FFFF, "event-control mask applied");
    assert_eq!(msr_read(&root, 0, ctl1), 0, "socket 0's CPU untouched");
    assert_eq!(ask(&mut s, read, 1, cha_dev, fake(FakeReg::Ctrl(1)), 0).data, 0x00FF_FFFF_FF95_FFFF);
    // Box control: freeze bit only, never the reset bits LIKWID does not use.
    assert_eq!(ask(&mut s, write, 1, cha_dev, fake(FakeReg::UnitCtrl), 0x301).errorcode, wire::ERR_NOERROR);
    assert_eq!(msr_read(&root, 2, cha.box_ctl), 1);
    assert_eq!(ask(&mut s, write, 1, cha_dev, fake(FakeReg::Filter0), 0xFFFF).errorcode, wire::ERR_NOERROR);
    assert_eq!(msr_read(&root, 2, cha.box_ctl + 0xE), 0x3FF);

    // MMIO unit: iMC 2 of socket 0 in its /dev/mem page; 32-bit controls, 64-bit counters.
    let (imc, imc_dev) = unit("spr", 0, "iMC", 2);
    mem_write(&root, imc.box_ctl + imc.ctl_offset + 4, 0x5555_5555);
    assert_eq!(ask(&mut s, write, 0, imc_dev, fake(FakeReg::Ctrl(0)), 0x1_0040_0104).errorcode, wire::ERR_NOERROR);
    assert_eq!(mem_read(&root, imc.box_ctl + imc.ctl_offset, 4), 0x0040_0104 & 0xFF95_FFFF);
    assert_eq!(mem_read(&root, imc.box_ctl + imc.ctl_offset + 4, 4), 0x5555_5555, "the neighbour is untouched");
    mem_write(&root, imc.box_ctl + imc.ctr_offset + 8, 0xABCD_EF01);
    assert_eq!(ask(&mut s, read, 0, imc_dev, fake(FakeReg::Ctr(1)), 0).data, 0xABCD_EF01);
    assert_eq!(ask(&mut s, write, 0, imc_dev, fake(FakeReg::FixedCtrl), u64::MAX).errorcode, wire::ERR_NOERROR);
    assert_eq!(mem_read(&root, imc.box_ctl + 0x54, 8), 0x50_0000);

    // PCI unit: UPI 1 of socket 1 in its device's config space, as two 32-bit halves.
    let (upi, upi_dev) = unit("spr", 1, "UPI", 1);
    let config = std::fs::OpenOptions::new().write(true).open(pci_config(&root, upi.box_ctl)).unwrap();
    let ctr0 = (upi.box_ctl & 0xFFF) + upi.ctr_offset;
    config.write_all_at(&0x0000_0012_3456_789Au64.to_le_bytes(), ctr0).unwrap();
    assert_eq!(ask(&mut s, read, 1, upi_dev, fake(FakeReg::Ctr(0)), 0).data, 0x12_3456_789A);
    assert_eq!(ask(&mut s, write, 1, upi_dev, fake(FakeReg::Ctr(0)), 0).errorcode, wire::ERR_NOERROR);
    let mut b = [0u8; 8];
    std::fs::File::open(pci_config(&root, upi.box_ctl)).unwrap().read_exact_at(&mut b, ctr0).unwrap();
    assert_eq!(u64::from_le_bytes(b), 0);

    // Uncore-wide freeze through MSR_UBOX_DEVICE: the global control MSR of socket 1's CPU 2.
    let ubox = N.index(discovery::GLOBAL_DEVICE).unwrap();
    assert_eq!(ask(&mut s, write, 1, ubox, fake(FakeReg::GlobalCtrl), 0xFF).errorcode, wire::ERR_NOERROR);
    assert_eq!(msr_read(&root, 2, GLOBAL_CTL), 1);
    assert_eq!(ask(&mut s, check, 1, ubox, 0, 0).errorcode, wire::ERR_NODEV, "SPR has no UBOX unit");

    // Refused: everything a unit does not have or the allow table does not list.
    let refused = [
        (write, cha_dev, fake(FakeReg::UnitReset)),
        (read, cha_dev, fake(FakeReg::Ctrl(4))),
        (read, cha_dev, fake(FakeReg::Ctr(4))),
        (write, cha_dev, fake(FakeReg::UnitStatus)),
        (read, imc_dev, fake(FakeReg::Freerun(0))),
        (write, imc_dev, fake(FakeReg::Filter0)),
        (read, imc_dev, 0x40),   // a raw MMIO offset, not a FAKE_UNC register
        (write, upi_dev, 0x350), // a raw config offset
        (read, upi_dev, fake(FakeReg::FixedCtr)),
        (read, cha_dev, fake(FakeReg::GlobalCtrl)), // global registers only on MSR_UBOX_DEVICE
    ];
    for (kind, device, reg) in refused {
        let r = ask(&mut s, kind, 1, device, reg, 0x1);
        assert_eq!(r.errorcode, wire::ERR_RESTREG, "type {kind} device {device} reg {reg:#x}");
    }
    // Units and sockets the tables do not have.
    let beyond = N.index("MSR_CBOX_DEVICE_C60").unwrap();
    assert_eq!(ask(&mut s, check, 0, beyond, 0, 0).errorcode, wire::ERR_NODEV);
    assert_eq!(ask(&mut s, read, 0, beyond, fake(FakeReg::Ctr(0)), 0).errorcode, wire::ERR_NODEV);
    assert_eq!(ask(&mut s, check, 2, cha_dev, 0, 0).errorcode, wire::ERR_NODEV);
    assert_eq!(ask(&mut s, read, u32::MAX, cha_dev, fake(FakeReg::Ctr(0)), 0).errorcode, wire::ERR_NODEV);

    let log = finish(s, child);
    assert!(log.contains("uncore discovery: socket 0: 225 units"), "{log}");
    let denials = log.lines().filter(|l| l.contains("denied")).count();
    assert_eq!(denials, 10, "each refusal logged:\n{log}");
    assert!(log.lines().any(|l| l.contains("denied read") && l.contains("reg=0x40")), "{log}");
}

#[test]
fn a_hostile_table_is_refused_and_only_its_socket_loses_its_units() {
    let root = machine("hostile", "spr");
    // Socket 1's table: stride 0, so every unit entry would be read over the global entry.
    let address = table_address(1);
    let w0 = mem_read(&root, address, 8);
    mem_write(&root, address, w0 & !0xFF00);
    let (mut s, child) = spawn(&root, "5.4");
    let (_, cha_dev) = unit("spr", 0, "CHA", 0);
    assert_eq!(ask(&mut s, wire::Kind::Check.code(), 0, cha_dev, 0, 0).errorcode, wire::ERR_NOERROR);
    assert_eq!(ask(&mut s, wire::Kind::Check.code(), 1, cha_dev, 0, 0).errorcode, wire::ERR_NODEV);
    assert_eq!(ask(&mut s, wire::Kind::Write.code(), 1, cha_dev, fake(FakeReg::Ctrl(0)), 1).errorcode, wire::ERR_NODEV);
    let log = finish(s, child);
    assert!(log.contains("refused: unit stride 0"), "{log}");
    assert!(log.contains("socket 1 has no uncore units"), "{log}");
}

#[test]
fn a_unit_pointing_at_core_msrs_refuses_the_table() {
    let root = machine("core-msr", "gnr");
    // Unit 0 of socket 0 (a CHA, MSR access) moved onto IA32_PERFEVTSEL0.
    let (global, units) = layout("gnr", 0).unwrap();
    let mut u = units[0].clone();
    u.box_ctl = 0x184;
    let at = table_address(0) + global.stride * 8;
    std::fs::OpenOptions::new().write(true).open(root.join("dev/mem")).unwrap().write_all_at(&u.encode(), at).unwrap();
    let (mut s, child) = spawn(&root, "5.4");
    let (_, cha_dev) = unit("gnr", 0, "CHA", 1);
    assert_eq!(ask(&mut s, wire::Kind::Check.code(), 0, cha_dev, 0, 0).errorcode, wire::ERR_NODEV);
    assert_eq!(ask(&mut s, wire::Kind::Check.code(), 1, cha_dev, 0, 0).errorcode, wire::ERR_NOERROR);
    let log = finish(s, child);
    assert!(log.contains("outside the uncore"), "{log}");
}

#[test]
fn a_likwid_5_3_client_sends_filter0_where_5_4_sends_global_status4() {
    let root = machine("v53", "emr");
    let (cha, _) = unit("emr", 0, "CHA", 7);
    let dev53 = Numbering::Likwid53.index("MSR_CBOX_DEVICE_C0").unwrap() + 7;
    let (mut s, child) = spawn(&root, "5.3");
    let filter53 = FakeReg::Filter0.encode(Numbering::Likwid53).unwrap();
    assert_eq!(filter53, 0x8000_0020);
    assert_eq!(ask(&mut s, wire::Kind::Write.code(), 0, dev53, filter53, 0x1FF).errorcode, wire::ERR_NOERROR);
    assert_eq!(msr_read(&root, 0, cha.box_ctl + 0xE), 0x1FF);
    finish(s, child);
    // The same value from a 5.4+ client is GLOBAL_STATUS4: not a CHA register.
    let dev54 = N.index("MSR_CBOX_DEVICE_C0").unwrap() + 7;
    let (mut s, child) = spawn(&root, "5.4");
    assert_eq!(ask(&mut s, wire::Kind::Write.code(), 0, dev54, 0x8000_0020, 0).errorcode, wire::ERR_RESTREG);
    finish(s, child);
}

#[test]
fn every_simulated_unit_of_spr_emr_gnr_answers_its_check_and_counter_reads() {
    for model in ["spr", "emr", "gnr"] {
        let root = machine(&format!("all-{model}"), model);
        let (mut s, child) = spawn(&root, "5.4");
        let map = UnitMap::for_model(model).unwrap();
        for socket in 0..2 {
            for u in layout(model, socket).unwrap().1 {
                let dev = map.device_of(N, u.box_type, u.box_id).unwrap();
                let kind = map.kind(u.box_type).unwrap();
                assert_eq!(
                    ask(&mut s, wire::Kind::Check.code(), socket, dev, 0, 0).errorcode,
                    0,
                    "{model} {} {}",
                    kind.name,
                    u.box_id
                );
                for reg in [FakeReg::UnitCtrl, FakeReg::Ctrl(3), FakeReg::Ctr(3)] {
                    let r = ask(&mut s, wire::Kind::Read.code(), socket, dev, fake(reg), 0);
                    assert_eq!(r.errorcode, 0, "{model} {} {} {reg:?}", kind.name, u.box_id);
                }
                let loc = discovery::locate(&u, kind.layout, FakeReg::Ctr(0)).unwrap();
                assert_eq!(matches!(loc.space, Space::Msr), u.access == discovery::Access::Msr);
            }
        }
        let log = finish(s, child);
        assert!(!log.contains("denied"), "{model}: {log}");
    }
}

#[test]
fn a_daemon_that_guessed_5_2_serves_discovery_units_in_5_4_numbering() {
    // LIKWID 5.2 runs no discovery CPU: a client addressing units speaks 5.3.0 or 5.4+.
    let root = machine("guess52", "spr");
    let (cha, cha_dev) = unit("spr", 1, "CHA", 2);
    let (mut s, child) = spawn(&root, "5.2");
    assert_eq!(ask(&mut s, wire::Kind::Check.code(), 1, cha_dev, 0, 0).errorcode, wire::ERR_NOERROR);
    assert_eq!(ask(&mut s, wire::Kind::Write.code(), 1, cha_dev, fake(FakeReg::Ctrl(0)), 0x1234).errorcode, 0);
    assert_eq!(msr_read(&root, 2, cha.box_ctl + cha.ctl_offset), 0x1234);
    finish(s, child);
}

#[test]
fn a_table_outside_its_devices_bars_or_a_pci_unit_on_a_foreign_device_is_refused() {
    // Socket 0: the discovery BAR in config space no longer matches what the kernel assigned.
    // Socket 1: a UPI unit whose device is a network controller, not an uncore function.
    let root = machine("sysfs", "spr");
    let (upi, _) = unit("spr", 1, "UPI", 0);
    let upi_dir = pci_config(&root, upi.box_ctl).parent().unwrap().to_path_buf();
    std::fs::write(upi_dir.join("class"), "0x020000\n").unwrap();
    let discovery_dev = root.join("sys/bus/pci/devices/0000:1e:00.1");
    let resource = std::fs::read_to_string(discovery_dev.join("resource")).unwrap();
    std::fs::write(discovery_dev.join("resource"), resource.replacen("0x0000000100000000", "0x0000000200000000", 1))
        .unwrap();
    let (mut s, child) = spawn(&root, "5.4");
    let (_, cha_dev) = unit("spr", 0, "CHA", 0);
    for socket in 0..2 {
        assert_eq!(
            ask(&mut s, wire::Kind::Check.code(), socket, cha_dev, 0, 0).errorcode,
            wire::ERR_NODEV,
            "socket {socket}"
        );
    }
    let log = finish(s, child);
    assert!(log.contains("0000:1e:00.1: table at 0x100000000 refused: not inside a memory BAR"), "{log}");
    assert!(log.contains("which is no Intel system peripheral"), "{log}");
}

#[test]
fn this_machines_real_pci_devices_yield_no_discovery_units() {
    let root = machine("real", "spr");
    std::fs::remove_dir_all(root.join("sys/bus/pci/devices")).unwrap();
    std::os::unix::fs::symlink("/sys/bus/pci/devices", root.join("sys/bus/pci/devices")).unwrap();
    let uid = nix::unistd::getuid().as_raw();
    let mut engine = likwid_access::testing::Engine::open(&likwid_access::testing::Root::new(&root), uid, N).unwrap();
    assert_eq!(engine.discovered_units(), vec![], "this VM has no uncore discovery device");
    let (_, cha_dev) = unit("spr", 0, "CHA", 0);
    assert_eq!(engine.check(0, cha_dev), Err(likwid_access::testing::AccessError::NoDevice));
    assert_eq!(engine.read(0, cha_dev, fake(FakeReg::Ctr(0))), Err(likwid_access::testing::AccessError::NoDevice));
}
