//! PCI uncore through the engine: only the generation's uncore devices are served, so this
//! machine's real PCI devices are never reachable, even on a simulated Skylake-SP whose
//! sysfs is the real one.
#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

use likwid_access::testing::AccessError;
use likwid_access::testing::CpuModel;
use likwid_access::testing::Engine;
use likwid_access::testing::Numbering;
use likwid_access::testing::Root;

#[test]
fn real_pci_devices_of_this_machine_are_never_served() {
    let dir = Scratch::new("pci-real");
    likwid_access::testing::create(&dir, CpuModel::by_name("skx").unwrap(), &[0, 1]).unwrap();
    std::fs::remove_dir_all(dir.join("sys/bus/pci/devices")).unwrap();
    std::os::unix::fs::symlink("/sys/bus/pci/devices", dir.join("sys/bus/pci/devices")).unwrap();
    let real = std::fs::read_dir("/sys/bus/pci/devices").map_or(0, |d| d.count());
    let mut engine = Engine::open(&Root::new(&dir), nix::unistd::getuid().as_raw(), Numbering::Likwid52).unwrap();
    assert_eq!(engine.pci_devices().count(), 0, "none of this machine's {real} PCI devices is an SKX uncore device");
    for index in 1..55 {
        for reg in [0x0, 0xA0, 0x318] {
            assert_eq!(engine.read(0, index, reg), Err(AccessError::NoDevice), "index {index} reg {reg:#x}");
        }
        assert_eq!(engine.check(0, index), Err(AccessError::NoDevice));
    }
}

#[test]
fn every_numbering_names_the_same_devices() {
    let dir = Scratch::new("pci-numbering");
    likwid_access::testing::create_sockets(&dir, CpuModel::by_name("skx").unwrap(), &[0, 1, 2, 3], 2).unwrap();
    for numbering in [Numbering::Likwid52, Numbering::Likwid53, Numbering::Likwid54] {
        let mut engine = Engine::open(&Root::new(&dir), nix::unistd::getuid().as_raw(), numbering).unwrap();
        let imc = numbering.index("PCI_IMC_DEVICE_0_CH_0").unwrap();
        engine.write(1, imc, 0xA0, 0xBEEF).unwrap();
        assert_eq!(engine.read(1, imc, 0xA0), Ok(0xBEEF), "{numbering:?}");
        assert_eq!(engine.pci_devices().count(), 2 * 14, "{numbering:?}");
    }
}
