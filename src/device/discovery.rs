//! Intel uncore discovery on the machine: finds each socket's discovery table through the PCI
//! extended capability in sysfs config space, reads it from `/dev/mem`, has
//! `policy::discovery` check it, and opens what its units need: `/dev/mem` windows for MMIO
//! units, config files for PCI units (MSR units use the socket's first CPU's MSR device).
//! Everything is opened here, before the daemon drops its privileges.

use super::pci::PciConfig;
use crate::policy::discovery::{self, Access, Space, Table, UnitMap, PAGE};
use crate::root::Root;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// One socket's checked table and the open windows of its units.
#[derive(Debug)]
pub struct SocketUnits {
    pub table: Table,
    /// `/dev/mem` windows by page address.
    pub mem: BTreeMap<u64, PciConfig>,
    /// Config space of PCI units by (domain, bus, devfn).
    pub pci: BTreeMap<(u8, u8, u8), PciConfig>,
}

/// Every socket's units, and how clients address them.
#[derive(Debug)]
pub struct Discovery {
    pub map: &'static UnitMap,
    pub sockets: BTreeMap<u32, SocketUnits>,
}

fn read_number(path: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    let t = text.trim();
    match t.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// The socket of a device on NUMA node `node`: the package of the node's first CPU (LIKWID
/// v5.5's rule), else the node itself; devices without a node take the next free socket.
fn socket_of_node(root: &Root, node: Option<i64>, cpu_sockets: &[(u32, u32)], next: u32) -> u32 {
    let Some(node) = node.filter(|n| *n >= 0) else { return next };
    let cpulist = root.base().join(format!("sys/devices/system/node/node{node}/cpulist"));
    let first_cpu = std::fs::read_to_string(cpulist)
        .ok()
        .and_then(|t| t.trim().split([',', '-']).next().and_then(|c| c.parse::<u32>().ok()));
    first_cpu.and_then(|cpu| cpu_sockets.iter().find(|(c, _)| *c == cpu).map(|(_, s)| *s)).unwrap_or(node as u32)
}

fn read_exact_at(file: &File, len: u64, at: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, at)?;
    Ok(buf)
}

/// The memory ranges (inclusive) of a device's BARs as the kernel assigned them: the lines of
/// sysfs `resource` (start end flags) with IORESOURCE_MEM (0x200) set.
fn memory_resources(dir: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join("resource")).unwrap_or_default();
    let hex = |w: &str| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok();
    text.lines()
        .filter_map(|line| {
            let mut w = line.split_whitespace().map(hex);
            let (Some(Some(start)), Some(Some(end)), Some(Some(flags))) = (w.next(), w.next(), w.next()) else {
                return None;
            };
            (flags & 0x200 != 0 && start != 0 && end > start).then_some((start, end))
        })
        .collect()
}

/// PCI units must name an Intel system-peripheral function (class 0x08xxxx, as uncore PMON
/// devices are): a table pointing a unit at a NIC's or a bridge's config space is refused.
fn check_pci_units(root: &Root, table: &Table) -> Result<(), String> {
    for unit in table.units.values().filter(|u| u.access == Access::Pci) {
        let (domain, bus, devfn) = discovery::pci_address(unit.box_ctl);
        let name = format!("{domain:04x}:{bus:02x}:{:02x}.{:x}", devfn >> 3, devfn & 7);
        let dir = root.pci_devices().join(&name);
        let (vendor, class) = (read_number(&dir.join("vendor")), read_number(&dir.join("class")));
        if vendor != Some(0x8086) || class.map(|c| c >> 16) != Some(0x08) {
            return Err(format!(
                "PCI unit (type {} id {}) names {name}, which is no Intel system peripheral (vendor {vendor:x?}, class {class:x?})",
                unit.box_type, unit.box_id
            ));
        }
    }
    Ok(())
}

/// Reads and checks the table at physical `address`.
fn read_table(mem: &File, address: u64, map: &UnitMap, forbidden: &dyn Fn(u32) -> bool) -> Result<Table, String> {
    let head = read_exact_at(mem, discovery::ENTRY_LEN as u64, address).map_err(|e| format!("cannot read it: {e}"))?;
    let global = discovery::parse_global(&head).map_err(|e| e.0)?;
    let bytes = read_exact_at(mem, global.table_len(), address).map_err(|e| format!("cannot read it: {e}"))?;
    discovery::parse_table(&bytes, map, forbidden).map_err(|e| e.0)
}

/// Opens the windows and config files of a socket's units. A unit whose window cannot be
/// opened stays in the table and answers OPENFAIL.
fn open_units(root: &Root, mem: &File, table: Table) -> SocketUnits {
    let mut out = SocketUnits { table, mem: BTreeMap::new(), pci: BTreeMap::new() };
    for unit in out.table.units.values() {
        match unit.access {
            Access::Msr => {}
            Access::Mmio => {
                let page = unit.box_ctl & !(PAGE - 1);
                if let std::collections::btree_map::Entry::Vacant(slot) = out.mem.entry(page) {
                    match mem.try_clone() {
                        Ok(file) => {
                            slot.insert(PciConfig::window(file, page));
                        }
                        Err(e) => log::warn!("uncore discovery: cannot share /dev/mem for page {page:#x}: {e}"),
                    }
                }
            }
            Access::Pci => {
                let (domain, bus, devfn) = discovery::pci_address(unit.box_ctl);
                if out.pci.contains_key(&(domain, bus, devfn)) {
                    continue;
                }
                let name = format!("{domain:04x}:{bus:02x}:{:02x}.{:x}", devfn >> 3, devfn & 7);
                let path = root.pci_devices().join(&name).join("config");
                match PciConfig::open(&path) {
                    Ok(config) => {
                        out.pci.insert((domain, bus, devfn), config);
                    }
                    Err(e) => log::warn!("uncore discovery: cannot open {}: {e}", path.display()),
                }
            }
        }
    }
    out
}

impl Discovery {
    /// Finds and checks the discovery tables of a CPU model that has them (spr, emr, gnr).
    /// `forbidden` names MSRs no unit may contain. Every refusal is logged with its reason.
    pub fn open(
        root: &Root,
        model: &str,
        cpu_sockets: &[(u32, u32)],
        forbidden: &dyn Fn(u32) -> bool,
    ) -> Option<Discovery> {
        let map = UnitMap::for_model(model)?;
        let mut found: Vec<(String, Option<i64>, u64)> = Vec::new();
        // A table must lie in one of its own device's memory BARs as the kernel assigned
        // them: config space alone could name any physical address.
        let mut entries: Vec<_> = std::fs::read_dir(root.pci_devices()).ok()?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if read_number(&path.join("vendor")) != Some(0x8086) {
                continue;
            }
            let mut config = Vec::with_capacity(4096);
            let Ok(file) = File::open(path.join("config")) else { continue };
            if file.take(4096).read_to_end(&mut config).is_err() {
                continue;
            }
            match discovery::table_addresses(&config) {
                Ok(addresses) => {
                    let node = read_number(&path.join("numa_node"));
                    let bars = memory_resources(&path);
                    for a in addresses {
                        let end = a + discovery::TABLE_WINDOW - 1;
                        if bars.iter().any(|&(s, e)| s <= a && end <= e) {
                            found.push((name.clone(), node, a));
                        } else {
                            log::warn!(
                                "uncore discovery: {name}: table at {a:#x} refused: not inside a memory BAR the kernel assigned to the device ({})",
                                path.join("resource").display()
                            );
                        }
                    }
                }
                Err(e) => log::warn!("uncore discovery: {name}: capability refused: {e}"),
            }
        }
        if found.is_empty() {
            log::warn!(
                "uncore discovery: no discovery table in {}: uncore units unavailable",
                root.pci_devices().display()
            );
            return None;
        }
        let mem_path = root.base().join("dev/mem");
        let mem = match OpenOptions::new().read(true).write(true).open(&mem_path) {
            Ok(f) => f,
            Err(e) => {
                log::warn!("uncore discovery: cannot open {}: {e}: uncore units unavailable", mem_path.display());
                return None;
            }
        };
        let mut sockets = BTreeMap::new();
        let mut next = 0;
        for (name, node, address) in found {
            let socket = socket_of_node(root, node, cpu_sockets, next);
            next = next.max(socket + 1);
            if sockets.contains_key(&socket) {
                log::warn!("uncore discovery: {name}: a second table for socket {socket} at {address:#x} ignored");
                continue;
            }
            match read_table(&mem, address, map, forbidden).and_then(|t| check_pci_units(root, &t).map(|()| t)) {
                Ok(table) => {
                    log::info!(
                        "uncore discovery: socket {socket}: {} units from the table of {name} at {address:#x}",
                        table.units.len()
                    );
                    sockets.insert(socket, open_units(root, &mem, table));
                }
                Err(why) => log::warn!(
                    "uncore discovery: {name}: table at {address:#x} refused: {why}; socket {socket} has no uncore units"
                ),
            }
        }
        Some(Discovery { map, sockets })
    }

    /// The open window or config file that holds `space` on `socket`'s units.
    pub fn window(&self, socket: u32, space: Space, address: u64) -> Option<(&PciConfig, u32)> {
        let units = self.sockets.get(&socket)?;
        match space {
            Space::Msr => None,
            Space::Mem => {
                let page = address & !(PAGE - 1);
                units.mem.get(&page).map(|c| (c, (address - page) as u32))
            }
            Space::Pci(pci) => units.pci.get(&pci).map(|c| (c, address as u32)),
        }
    }
}
