//! Intel uncore discovery (Sapphire Rapids and later): finding the discovery table in a PCI
//! device's config space, reading its global and unit entries, and refusing tables that are
//! malformed or hostile. Pure: the caller reads config space and `/dev/mem`, this module only
//! decides. Layouts from LIKWID v5.5.1 `src/includes/intel_perfmon_uncore_discovery.h` and
//! `src/intel_perfmon_uncore_discovery.c`, and Linux `arch/x86/events/intel/uncore_discovery.h`.
//!
//! Where LIKWID follows whatever the table says (units at any offset, stride 0, any number of
//! registers), every entry here is checked before anything is mapped or reached: one bad unit
//! refuses the whole table, with the reason, and then no unit of that socket is served.

mod regs;

pub use regs::{
    locate, locate_global, pci_address, FakeReg, Layout, Location, RegisterRule, Space, UnitKind, UnitMap, Width,
    ALLOW_TABLE, FAKE_BASE, GLOBAL_DEVICE,
};

use std::collections::BTreeMap;
use std::fmt;

/// Extended capability id of the discovery DVSEC.
const CAP_ID_DISCOVERY: u32 = 0x23;
/// DVSEC id of a PMON discovery table (config dword at cap + 8, bits 15:0).
const DVSEC_ID_PMON: u32 = 1;
/// Bytes LIKWID maps for a table; no entry may lie beyond.
pub const TABLE_WINDOW: u64 = 0x80000;
/// Size of one global or unit entry: three 64-bit words.
pub const ENTRY_LEN: usize = 24;
/// The page LIKWID maps for an MMIO or PCI unit; every register must lie inside it.
pub const PAGE: u64 = 4096;
/// More counters than this in one unit is not a PMON unit (real ones have 4 to 8).
pub const MAX_NUM_REGS: u64 = 16;

/// How a unit (or the global control) is reached, from bits 63:62 of the entry's first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Msr,
    Mmio,
    Pci,
}

/// Why a table or its location is not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused(why.into()))
}

fn dword(config: &[u8], offset: usize) -> Option<u32> {
    config.get(offset..offset + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn word(bytes: &[u8], offset: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(w)
}

/// The physical addresses of the PMON discovery tables a device's config space points to, by
/// walking the extended capability list from 0x100. Ok(empty) for an ordinary device (or a
/// config space shorter than 4 KiB, which is what an unprivileged reader sees); Err for a list
/// that loops or leaves config space, and for a table location that is not a memory BAR.
pub fn table_addresses(config: &[u8]) -> Result<Vec<u64>, Refused> {
    let mut out = Vec::new();
    let mut offset = 0x100usize;
    let mut seen = 0;
    while offset != 0 {
        let Some(header) = dword(config, offset) else { return Ok(out) };
        if header == 0 || header == u32::MAX {
            return Ok(out);
        }
        if header & 0xFFFF == CAP_ID_DISCOVERY && dword(config, offset + 8).map(|d| d & 0xFFFF) == Some(DVSEC_ID_PMON) {
            out.push(bar_address(config, offset)?);
        }
        let next = (header >> 20) as usize;
        seen += 1;
        if next != 0 && (next < 0x100 || next % 4 != 0 || next + 12 > 4096 || next <= offset || seen > 960) {
            return refuse(format!(
                "extended capability at {offset:#x} points to {next:#x}: the list must move forward inside 4 KiB"
            ));
        }
        offset = next;
    }
    Ok(out)
}

/// The table address the DVSEC at `cap` names: BAR number BIR (cap + 0xC, bits 2:0), a memory
/// BAR, 64-bit when its type bits say so, page aligned.
fn bar_address(config: &[u8], cap: usize) -> Result<u64, Refused> {
    let bir = dword(config, cap + 0xC).ok_or(Refused("discovery capability truncated".into()))? & 7;
    if bir > 5 {
        return refuse(format!("discovery table in BAR {bir}: a device has BARs 0 to 5"));
    }
    let at = 0x10 + 4 * bir as usize;
    let low = dword(config, at).unwrap_or(0);
    if low & 1 != 0 {
        return refuse(format!("discovery BAR {bir} is an I/O BAR ({low:#x}), not memory"));
    }
    let mut address = u64::from(low) & !(PAGE - 1);
    match low & 6 {
        0 => {}
        4 if bir < 5 => address |= u64::from(dword(config, at + 4).unwrap_or(0)) << 32,
        kind => return refuse(format!("discovery BAR {bir} has memory type {kind:#x} (or a 64-bit BAR in BAR 5)")),
    }
    if address == 0 {
        return refuse(format!("discovery BAR {bir} is 0 (unassigned)"));
    }
    Ok(address)
}

/// The global entry: where the uncore-wide control lives and how units are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// Unit entry i is at (i + 1) · stride · 8.
    pub stride: u64,
    pub max_units: u64,
    pub access: Access,
    pub global_ctl: u64,
    pub status_offset: u64,
    pub num_status: u64,
}

impl Global {
    /// Bytes of the table to read: the global entry and `max_units` unit entries.
    pub fn table_len(&self) -> u64 {
        self.max_units * self.stride * 8 + ENTRY_LEN as u64
    }
}

fn access(bits: u64, what: &str) -> Result<Access, Refused> {
    match bits >> 62 {
        0 => Ok(Access::Msr),
        1 => Ok(Access::Mmio),
        2 => Ok(Access::Pci),
        _ => refuse(format!("{what}: access type 3 is undefined")),
    }
}

fn invalid_entry(e: &[u8]) -> bool {
    let (w0, w2) = (word(e, 0), word(e, 16));
    w0 == 0 || w0 == u64::MAX || w2 == u64::MAX
}

/// Parses the global entry (the first 24 bytes of the table).
pub fn parse_global(entry: &[u8]) -> Result<Global, Refused> {
    if entry.len() < ENTRY_LEN || invalid_entry(entry) {
        return refuse("global entry is empty or all ones");
    }
    let (w0, w1, w2) = (word(entry, 0), word(entry, 8), word(entry, 16));
    let global = Global {
        stride: (w0 >> 8) & 0xFF,
        max_units: (w0 >> 16) & 0x3FF,
        access: access(w0, "global entry")?,
        global_ctl: w1,
        status_offset: w2 & 0xFF,
        num_status: (w2 >> 8) & 0xFFFF,
    };
    if global.stride * 8 < ENTRY_LEN as u64 {
        return refuse(format!("unit stride {} · 8 bytes is smaller than an entry (24 bytes)", global.stride));
    }
    if global.max_units == 0 {
        return refuse("table lists no units");
    }
    if global.table_len() > TABLE_WINDOW {
        return refuse(format!(
            "{} units of stride {} end at {:#x}, beyond the {TABLE_WINDOW:#x}-byte table window",
            global.max_units,
            global.stride,
            global.table_len()
        ));
    }
    Ok(global)
}

/// One PMON unit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub box_type: u16,
    pub box_id: u16,
    pub num_regs: u64,
    pub ctl_offset: u64,
    pub bit_width: u64,
    pub ctr_offset: u64,
    pub status_offset: u64,
    pub access: Access,
    /// MSR address, physical address, or PCI domain[30:28] bus[27:20] devfn[19:12] offset[11:0].
    pub box_ctl: u64,
}

impl Global {
    /// The entry's bytes (for simulated machines and tests).
    pub fn encode(&self, kind: u8) -> [u8; ENTRY_LEN] {
        let access = match self.access {
            Access::Msr => 0u64,
            Access::Mmio => 1,
            Access::Pci => 2,
        };
        let w0 = u64::from(kind) | (self.stride & 0xFF) << 8 | (self.max_units & 0x3FF) << 16 | access << 62;
        let w2 = (self.status_offset & 0xFF) | (self.num_status & 0xFFFF) << 8;
        entry(w0, self.global_ctl, w2)
    }
}

impl Unit {
    /// The entry's bytes (for simulated machines and tests).
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let access = match self.access {
            Access::Msr => 0u64,
            Access::Mmio => 1,
            Access::Pci => 2,
        };
        let w0 = (self.num_regs & 0xFF)
            | (self.ctl_offset & 0xFF) << 8
            | (self.bit_width & 0xFF) << 16
            | (self.ctr_offset & 0xFF) << 24
            | (self.status_offset & 0xFF) << 32
            | access << 62;
        entry(w0, self.box_ctl, u64::from(self.box_type) | u64::from(self.box_id) << 16)
    }
}

fn entry(w0: u64, w1: u64, w2: u64) -> [u8; ENTRY_LEN] {
    let mut out = [0u8; ENTRY_LEN];
    out[0..8].copy_from_slice(&w0.to_le_bytes());
    out[8..16].copy_from_slice(&w1.to_le_bytes());
    out[16..24].copy_from_slice(&w2.to_le_bytes());
    out
}

/// A socket's table, checked: the global entry and the units LIKWID addresses, by (type, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub global: Global,
    pub units: BTreeMap<(u16, u16), Unit>,
}

/// Parses and checks every unit of a table. `bytes` starts at the global entry and holds
/// `table_len()` bytes. Units of types the map does not name, or with ids beyond its count,
/// are skipped, as LIKWID skips them. `forbidden_msr` says which MSRs no unit may contain
/// (the core PMU and the never-writable registers).
pub fn parse_table(bytes: &[u8], map: &UnitMap, forbidden_msr: &dyn Fn(u32) -> bool) -> Result<Table, Refused> {
    let global = parse_global(bytes)?;
    if (bytes.len() as u64) < global.table_len() {
        return refuse(format!("table truncated: {} of {} bytes", bytes.len(), global.table_len()));
    }
    if global.access == Access::Msr {
        for reg in global_registers(&global) {
            if forbidden_msr(reg) {
                return refuse(format!("global control or status at MSR {reg:#x}, a register outside the uncore"));
            }
        }
    }
    let mut units = BTreeMap::new();
    let mut spans: Vec<(Space, u64, u64, String)> = Vec::new();
    for i in 0..global.max_units {
        let at = ((i + 1) * global.stride * 8) as usize;
        let e = &bytes[at..at + ENTRY_LEN];
        let (w0, box_ctl, w2) = (word(e, 0), word(e, 8), word(e, 16));
        if invalid_entry(e) || w0 & 0xFF == 0 {
            continue;
        }
        let unit = Unit {
            num_regs: w0 & 0xFF,
            ctl_offset: (w0 >> 8) & 0xFF,
            bit_width: (w0 >> 16) & 0xFF,
            ctr_offset: (w0 >> 24) & 0xFF,
            status_offset: (w0 >> 32) & 0xFF,
            access: access(w0, &format!("unit entry {i}"))?,
            box_ctl,
            box_type: (w2 & 0xFFFF) as u16,
            box_id: ((w2 >> 16) & 0xFFFF) as u16,
        };
        let Some(kind) = map.kind(unit.box_type) else { continue };
        if u64::from(unit.box_id) >= kind.max {
            continue;
        }
        let name = format!("unit entry {i} ({} {})", kind.name, unit.box_id);
        let (space, lo, hi) =
            check_unit(&unit, kind.layout, forbidden_msr).map_err(|e| Refused(format!("{name}: {e}")))?;
        if let Some((.., other)) = spans.iter().find(|(s, l, h, _)| *s == space && lo < *h && *l < hi) {
            return refuse(format!("{name} overlaps {other}"));
        }
        spans.push((space, lo, hi, name.clone()));
        if units.insert((unit.box_type, unit.box_id), unit).is_some() {
            return refuse(format!("{name}: type and id listed twice"));
        }
    }
    Ok(Table { global, units })
}

/// Checks one unit's fields and returns the span of addresses its registers cover.
fn check_unit(unit: &Unit, layout: Layout, forbidden_msr: &dyn Fn(u32) -> bool) -> Result<(Space, u64, u64), String> {
    if unit.num_regs > MAX_NUM_REGS {
        return Err(format!("{} counters (at most {MAX_NUM_REGS})", unit.num_regs));
    }
    if unit.bit_width == 0 || unit.bit_width > 64 {
        return Err(format!("counter width {} bits", unit.bit_width));
    }
    if unit.box_ctl == 0 {
        return Err("unit control address 0".into());
    }
    if unit.access == Access::Pci && unit.box_ctl >> 31 != 0 {
        return Err(format!("PCI unit control {:#x} has bits above the PCI address", unit.box_ctl));
    }
    let locations: Vec<Location> =
        FakeReg::unit_registers(unit.num_regs).into_iter().filter_map(|r| locate(unit, layout, r)).collect();
    let space = locations.first().map(|l| l.space).ok_or("no register reachable")?;
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for l in &locations {
        let start = l.address;
        let end = if l.space == Space::Msr { start + 1 } else { start + u64::from(l.width.bytes()) };
        lo = lo.min(start);
        hi = hi.max(end);
        match l.space {
            Space::Msr => {
                let reg = u32::try_from(start).map_err(|_| format!("register {start:#x} is no 32-bit MSR"))?;
                if forbidden_msr(reg) {
                    return Err(format!("register at MSR {reg:#x}, a register outside the uncore"));
                }
            }
            Space::Mem | Space::Pci(_) => {
                // LIKWID maps the one page that holds the unit control (config space: 4 KiB).
                let page = if unit.access == Access::Pci { 0 } else { unit.box_ctl / PAGE };
                if start / PAGE != page || (end - 1) / PAGE != page {
                    return Err(format!("register at {start:#x} leaves the unit's 4 KiB page"));
                }
            }
        }
    }
    Ok((space, lo, hi))
}

/// The MSRs of the global control and its status registers LIKWID reaches.
pub fn global_registers(global: &Global) -> impl Iterator<Item = u32> + '_ {
    let status = (0..global.num_status.min(4)).map(|k| global.global_ctl + global.status_offset + k);
    std::iter::once(global.global_ctl).chain(status).filter_map(|r| u32::try_from(r).ok())
}

#[cfg(test)]
mod tests;
