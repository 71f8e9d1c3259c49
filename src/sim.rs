//! Simulated machines: a directory tree that `LIKWID_ACCESS_ROOT` can point at, with a
//! `proc/cpuinfo` naming the CPU and its sockets, one sparse register-store file per CPU, and
//! for Intel servers the uncore PCI devices of each socket under `sys/bus/pci/devices`, and
//! from Sapphire Rapids on the uncore discovery tables and units (`sim/discovery.rs`).

pub mod discovery;

use crate::policy::pci::Generation;
use crate::policy::CpuModel;
use crate::root::Root;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// 8 bytes for each of the 2^32 register addresses: every MSR fits, and sparse files cost
/// nothing until written.
pub const REGISTER_STORE_LEN: u64 = 8 << 32;

/// The socket of the `index`-th of `count` CPUs on `sockets` sockets (consecutive blocks).
fn socket_of(index: usize, count: usize, sockets: u32) -> u32 {
    (index * sockets as usize / count.max(1)) as u32
}

/// The `/proc/cpuinfo` text of a simulated machine.
pub fn cpuinfo(model: &CpuModel, cpus: &[u32], sockets: u32) -> String {
    let id = model.identity();
    let per_socket = cpus.len() / sockets.max(1) as usize;
    let mut text = String::new();
    for (index, cpu) in cpus.iter().enumerate() {
        let _ = write!(
            text,
            "processor\t: {cpu}\nvendor_id\t: {}\ncpu family\t: {}\nmodel\t\t: {}\n\
             model name\t: {} (simulated by likwid-access)\nstepping\t: 1\nphysical id\t: {}\n\
             core id\t\t: {}\ncpu cores\t: {per_socket}\n\n",
            model.vendor.vendor_id(),
            id.family,
            id.model,
            model.description,
            socket_of(index, cpus.len(), sockets),
            index % per_socket.max(1),
        );
    }
    text
}

/// PCI bus of the first uncore device of `socket` (made-up but plausible numbers).
fn first_bus(socket: u32) -> u32 {
    0x10 + 0x80 * socket
}

/// A PCI device directory as sysfs shows it, with a 4 KiB config space that starts with the
/// vendor and device ids, as real ones do.
fn pci_device(dir: &Path, vendor: u16, device: u16, numa_node: i64) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("vendor"), format!("{vendor:#06x}\n"))?;
    std::fs::write(dir.join("device"), format!("{device:#06x}\n"))?;
    std::fs::write(dir.join("numa_node"), format!("{numa_node}\n"))?;
    let mut config = vec![0u8; 4096];
    config[0..2].copy_from_slice(&vendor.to_le_bytes());
    config[2..4].copy_from_slice(&device.to_le_bytes());
    std::fs::write(dir.join("config"), config)
}

/// The uncore devices of every socket, plus one ordinary device (a NIC) that the daemon must
/// never open.
fn create_pci(root: &Root, generation: &Generation, sockets: u32) -> io::Result<()> {
    let devices = root.pci_devices();
    for socket in 0..sockets {
        let mut seen: Vec<(&str, u32, u8, u8)> = Vec::new();
        for entry in generation.devices {
            if seen.iter().any(|(name, ..)| *name == entry.name) {
                continue; // one device per PciDeviceIndex entry, with its first id
            }
            let mut bus = first_bus(socket);
            while seen.iter().any(|&(_, b, d, f)| (b, d, f) == (bus, entry.dev, entry.func)) {
                bus += 1;
            }
            seen.push((entry.name, bus, entry.dev, entry.func));
            let name = format!("0000:{bus:02x}:{:02x}.{:x}", entry.dev, entry.func);
            pci_device(&devices.join(name), entry.vendor, entry.device, i64::from(socket))?;
        }
    }
    if generation.devices.iter().any(|d| d.name == crate::device::pci::MMIO_BASE) {
        create_mmio(root, sockets)?;
    }
    pci_device(&devices.join("0000:00:1f.6"), 0x8086, 0x15b8, -1)?;
    write_proc_pci(root)
}

/// `proc/bus/pci/devices` for every function under `sys/bus/pci/devices`, as the kernel prints
/// it (drivers/pci/proc.c, show_device: bus and devfn, vendor and device, irq, then seven
/// resource starts, seven sizes and the driver, no domain). Scripts that add functions append
/// their lines (bench/bench.sh).
pub fn write_proc_pci(root: &Root) -> io::Result<()> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(root.pci_devices())? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let Some((bus, devfn)) = name.split_once(':').and_then(|(_, rest)| rest.split_once(':')) else { continue };
        let (Some((dev, func)), Ok(bus)) = (devfn.split_once('.'), u8::from_str_radix(bus, 16)) else { continue };
        let (Ok(dev), Ok(func)) = (u8::from_str_radix(dev, 16), u8::from_str_radix(func, 16)) else { continue };
        let id = |attr: &str| -> io::Result<u16> {
            let text = std::fs::read_to_string(path.join(attr))?;
            u16::from_str_radix(text.trim().trim_start_matches("0x"), 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        };
        let zeros = "\t               0".repeat(14);
        lines.push(format!(
            "{bus:02x}{:02x}\t{:04x}{:04x}\t0{zeros}\t\n",
            dev << 3 | func,
            id("vendor")?,
            id("device")?
        ));
    }
    lines.sort();
    std::fs::create_dir_all(root.base().join("proc/bus/pci"))?;
    std::fs::write(root.base().join("proc/bus/pci/devices"), lines.concat())
}

/// Icelake-SP: BARs in each socket's 00.1 config space that place its memory-controller windows
/// at (socket + 1) · 8 MiB, and a sparse `dev/mem` that holds them.
fn create_mmio(root: &Root, sockets: u32) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    for socket in 0..sockets {
        let config = root.pci_devices().join(format!("0000:{:02x}:00.1/config", first_bus(socket)));
        let file = std::fs::OpenOptions::new().write(true).open(config)?;
        file.write_all_at(&(socket + 1).to_le_bytes(), 0xD0)?;
        for controller in 0..4u32 {
            file.write_all_at(&(controller + 1).to_le_bytes(), 0xD8 + 4 * u64::from(controller))?;
        }
    }
    std::fs::create_dir_all(root.base().join("dev"))?;
    let mem = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(root.base().join("dev/mem"))?;
    mem.set_len((u64::from(sockets) + 1) << 23)
}

/// Creates (or refreshes) a simulated single-socket machine under `dir`.
pub fn create(dir: &Path, model: &CpuModel, cpus: &[u32]) -> io::Result<()> {
    create_sockets(dir, model, cpus, 1)
}

/// Creates (or refreshes) a simulated machine under `dir` whose CPUs are spread over `sockets`.
pub fn create_sockets(dir: &Path, model: &CpuModel, cpus: &[u32], sockets: u32) -> io::Result<()> {
    let root = Root::new(dir);
    std::fs::create_dir_all(dir.join("proc"))?;
    std::fs::create_dir_all(dir.join("var/run"))?;
    std::fs::write(root.cpuinfo(), cpuinfo(model, cpus, sockets))?;
    if let Some(generation) = Generation::for_model(model.name) {
        create_pci(&root, generation, sockets)?;
    }
    discovery::create(&root, model.name, sockets)?;
    for &cpu in cpus {
        let path = root.msr(cpu);
        std::fs::create_dir_all(path.parent().unwrap())?;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        file.set_len(REGISTER_STORE_LEN)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::policy::pci::Numbering;

    #[test]
    fn simulated_cpuinfo_selects_the_named_table() {
        for model in crate::policy::CPU_MODELS {
            let text = cpuinfo(model, &[0, 1], 1);
            let id = crate::policy::parse_cpuinfo(&text).unwrap();
            assert_eq!(CpuModel::for_identity(&id).unwrap().name, model.name);
        }
    }

    #[test]
    fn a_simulated_machine_serves_the_engine() {
        let dir = std::env::temp_dir().join(format!("likwid-sim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create(&dir, CpuModel::by_name("zen4").unwrap(), &[0, 2, 5]).unwrap();
        let mut engine = Engine::open(&Root::new(&dir), nix::unistd::getuid().as_raw(), Numbering::Likwid52).unwrap();
        assert_eq!(engine.cpus(), vec![0, 2, 5]);
        engine.write(2, 0, 0xC001_0201, 0xABCD).unwrap();
        assert_eq!(engine.read(2, 0, 0xC001_0201).unwrap(), 0xABCD);
        assert_eq!(engine.read(0, 0, 0xC001_0201).unwrap(), 0);
        assert_eq!(engine.read(1, 0, 0xC001_0201), Err(crate::error::AccessError::NoDevice));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
