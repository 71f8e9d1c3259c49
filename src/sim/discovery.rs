//! Simulated uncore discovery (Sapphire Rapids and later): per socket one discovery device in
//! sysfs whose config space carries the extended capability 0x23 and a 64-bit BAR, the table
//! it points to in the sparse `dev/mem`, MMIO units in `dev/mem` pages, PCI units as sysfs
//! devices, MSR units in the register stores. Every unit type LIKWID maps gets all its ids, so
//! every group LIKWID lists finds its counters. Addresses are made up, layouts are Intel's.

use super::pci_device;
use crate::policy::discovery::{Access, Global, Unit, UnitKind, UnitMap, ENTRY_LEN};
use crate::root::Root;
use std::io;
use std::os::unix::fs::FileExt;

/// Discovery device id LIKWID 5.3.0 looked for (5.4+ look at every Intel device).
const DISCOVERY_DEVICE: u16 = 0x09a7;
/// Unit entries are 4 · 8 = 32 bytes apart.
const STRIDE: u64 = 4;
/// Uncore global control MSR (SPR's U_MSR_PMON_GLOBAL_CTL) and its status registers at +2.
pub const GLOBAL_CTL: u64 = 0x2FF0;

/// Bus of the discovery device and of the PCI units of `socket`.
fn bus(socket: u32) -> u8 {
    (0x1E + 0x80 * socket) as u8
}

/// Physical address of `socket`'s table: above 4 GiB, so its BAR is a 64-bit one.
pub fn table_address(socket: u32) -> u64 {
    0x1_0000_0000 + u64::from(socket) * 0x0100_0000
}

/// Physical address of `socket`'s MMIO units: unit k's control at +k pages +0x800.
fn mmio_base(socket: u32) -> u64 {
    0x1_8000_0000 + u64::from(socket) * 0x0100_0000
}

/// Length of the simulated `dev/mem`.
pub fn mem_len(sockets: u32) -> u64 {
    mmio_base(sockets) + 0x0100_0000
}

/// MSR block of unit type `name` (unit i at base + 0x10·i).
fn msr_base(name: &str) -> u64 {
    match name {
        "CHA" => 0x2000,
        "MDF" => 0x2800,
        "PCU" => 0x2E00,
        "UBOX" => 0x2FD0,
        "IIO" => 0x3000,
        "IRP" => 0x3400,
        _ => 0x3800, // M2PCIe, B2CXL
    }
}

fn access_of(kind: &UnitKind) -> Access {
    match kind.name.as_str() {
        "iMC" | "HBM" => Access::Mmio,
        _ if kind.layout.split => Access::Pci,
        _ => Access::Msr,
    }
}

/// The global entry and every unit of `socket` on a simulated machine of `model`.
pub fn layout(model: &str, socket: u32) -> Option<(Global, Vec<Unit>)> {
    let map = UnitMap::for_model(model)?;
    let (mut mmio, mut pci) = (0u64, 0u64);
    let mut units = Vec::new();
    for kind in &map.kinds {
        for id in 0..kind.max {
            let (box_ctl, ctl_offset, ctr_offset, status_offset) = match access_of(kind) {
                Access::Msr => (msr_base(&kind.name) + 0x10 * id, 2, 8, 1),
                Access::Mmio => {
                    mmio += 1;
                    (mmio_base(socket) + (mmio - 1) * 0x1000 + 0x800, 0x40, 0x08, 0x5C)
                }
                Access::Pci => {
                    pci += 1;
                    let devfn = 7 + pci; // device 1 function 0 onwards
                    (u64::from(bus(socket)) << 20 | devfn << 12 | 0x318, 0x38, 0x08, 0x60)
                }
            };
            units.push(Unit {
                box_type: kind.box_type,
                box_id: id as u16,
                num_regs: 4,
                ctl_offset,
                bit_width: 48,
                ctr_offset,
                status_offset,
                access: access_of(kind),
                box_ctl,
            });
        }
    }
    let global = Global {
        stride: STRIDE,
        max_units: units.len() as u64,
        access: Access::Msr,
        global_ctl: GLOBAL_CTL,
        status_offset: 2,
        num_status: 4,
    };
    Some((global, units))
}

/// sysfs `class` (system peripheral, as uncore devices are) and `resource` of a simulated
/// device: six BAR lines (BAR 0 = the table's window when given, 64-bit memory) and the rest.
fn peripheral(dir: &std::path::Path, bar0: Option<u64>) -> io::Result<()> {
    std::fs::write(dir.join("class"), "0x088000\n")?;
    let mut text = String::new();
    for i in 0..13 {
        let line = match bar0 {
            Some(start) if i == 0 => format!("{start:#018x} {:#018x} 0x0000000000140204\n", start + 0x80000 - 1),
            _ => "0x0000000000000000 0x0000000000000000 0x0000000000000000\n".to_string(),
        };
        text.push_str(&line);
    }
    std::fs::write(dir.join("resource"), text)
}

/// Creates the discovery devices, tables and PCI units of every socket. Ok(false) for a model
/// without discovery.
pub(super) fn create(root: &Root, model: &str, sockets: u32) -> io::Result<bool> {
    if UnitMap::for_model(model).is_none() {
        return Ok(false);
    }
    std::fs::create_dir_all(root.base().join("dev"))?;
    let mem = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(root.base().join("dev/mem"))?;
    if mem.metadata()?.len() < mem_len(sockets) {
        mem.set_len(mem_len(sockets))?;
    }
    let devices = root.pci_devices();
    for socket in 0..sockets {
        let Some((global, units)) = layout(model, socket) else { continue };
        let dir = devices.join(format!("0000:{:02x}:00.1", bus(socket)));
        pci_device(&dir, 0x8086, DISCOVERY_DEVICE, i64::from(socket))?;
        peripheral(&dir, Some(table_address(socket)))?;
        let config = std::fs::OpenOptions::new().write(true).open(dir.join("config"))?;
        // Extended capability 0x23, version 1, last in the list; DVSEC id 1 (PMON); BIR 0.
        config.write_all_at(&(0x23u32 | 1 << 16).to_le_bytes(), 0x100)?;
        config.write_all_at(&1u32.to_le_bytes(), 0x108)?;
        config.write_all_at(&0u32.to_le_bytes(), 0x10C)?;
        let table = table_address(socket);
        config.write_all_at(&((table as u32) | 0x4).to_le_bytes(), 0x10)?; // 64-bit memory BAR
        config.write_all_at(&((table >> 32) as u32).to_le_bytes(), 0x14)?;
        mem.write_all_at(&global.encode(1), table)?;
        for (i, unit) in units.iter().enumerate() {
            mem.write_all_at(&unit.encode(), table + (i as u64 + 1) * STRIDE * 8)?;
            if unit.access == Access::Pci {
                let devfn = (unit.box_ctl >> 12) & 0xFF;
                let name = format!("0000:{:02x}:{:02x}.{:x}", bus(socket), devfn >> 3, devfn & 7);
                pci_device(&devices.join(&name), 0x8086, 0x3241, i64::from(socket))?;
                peripheral(&devices.join(name), None)?;
            }
        }
        debug_assert!(ENTRY_LEN as u64 <= STRIDE * 8);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::discovery::{locate, FakeReg};

    /// tests/likwid/harness.sh advances this counter in `/dev/mem` for its value check.
    #[test]
    fn spr_imc0_counter0_of_socket0_is_where_the_harness_advances_it() {
        let (_, units) = layout("spr", 0).unwrap();
        let imc = units.iter().find(|u| u.box_type == 6 && u.box_id == 0).unwrap();
        let kind = UnitMap::for_model("spr").unwrap().kind(6).unwrap();
        assert_eq!(locate(imc, kind.layout, FakeReg::Ctr(0)).unwrap().address, 0x1_8000_0808);
    }
}
