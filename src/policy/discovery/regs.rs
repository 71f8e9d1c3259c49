//! The FAKE_UNC_* registers LIKWID 5.3+ clients send for discovered units, where each one
//! lives (MSR, physical memory, PCI config space), and what a client may do with it. Tables:
//! `../pci/discovery-units.txt` (which units, how clients number them) and
//! `../pci/discovery-allow.txt` (read permission and write mask per register).

use super::{Access, Global, Unit};
use crate::policy::pci::Numbering;
use crate::policy::ParseError;
use std::sync::OnceLock;

/// First FAKE_UNC_* value (`FAKE_UNC_UNIT_CTRL = 1 << 31` in LIKWID's
/// `src/includes/intel_perfmon_uncore_discovery.h`, v5.3.0 .. v5.5.1).
pub const FAKE_BASE: u32 = 0x8000_0000;

/// A FAKE_UNC_* register. The enum grew GLOBAL_STATUS4..8 in v5.4.0, which moved FILTER0 and
/// FREERUN0..3: a client's numbering tells which layout it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeReg {
    UnitCtrl,
    UnitStatus,
    UnitReset,
    Ctrl(u8),
    Ctr(u8),
    FixedCtrl,
    FixedCtr,
    GlobalCtrl,
    GlobalStatus(u8),
    Filter0,
    Freerun(u8),
}

impl FakeReg {
    /// Number of GLOBAL_STATUS entries in the enum of a release.
    fn global_statuses(numbering: Numbering) -> Option<u32> {
        match numbering {
            Numbering::Likwid52 => None,
            Numbering::Likwid53 => Some(4),
            Numbering::Likwid54 => Some(9),
        }
    }

    pub fn decode(reg: u32, numbering: Numbering) -> Option<FakeReg> {
        let statuses = Self::global_statuses(numbering)?;
        let n = reg.checked_sub(FAKE_BASE)?;
        let filter = 0x1C + statuses;
        Some(match n {
            0 => FakeReg::UnitCtrl,
            1 => FakeReg::UnitStatus,
            2 => FakeReg::UnitReset,
            3..=8 => FakeReg::Ctrl((n - 3) as u8),
            9..=0x18 => FakeReg::Ctr((n - 9) as u8),
            0x19 => FakeReg::FixedCtrl,
            0x1A => FakeReg::FixedCtr,
            0x1B => FakeReg::GlobalCtrl,
            n if n >= 0x1C && n < filter => FakeReg::GlobalStatus((n - 0x1C) as u8),
            n if n == filter => FakeReg::Filter0,
            n if n > filter && n <= filter + 4 => FakeReg::Freerun((n - filter - 1) as u8),
            _ => return None,
        })
    }

    /// The value a client of `numbering` sends for this register.
    pub fn encode(self, numbering: Numbering) -> Option<u32> {
        let filter = 0x1C + Self::global_statuses(numbering)?;
        let n = match self {
            FakeReg::UnitCtrl => 0,
            FakeReg::UnitStatus => 1,
            FakeReg::UnitReset => 2,
            FakeReg::Ctrl(i) if i < 6 => 3 + u32::from(i),
            FakeReg::Ctr(i) if i < 16 => 9 + u32::from(i),
            FakeReg::FixedCtrl => 0x19,
            FakeReg::FixedCtr => 0x1A,
            FakeReg::GlobalCtrl => 0x1B,
            FakeReg::GlobalStatus(k) if 0x1C + u32::from(k) < filter => 0x1C + u32::from(k),
            FakeReg::Filter0 => filter,
            FakeReg::Freerun(k) if k < 4 => filter + 1 + u32::from(k),
            _ => return None,
        };
        Some(FAKE_BASE + n)
    }

    /// The name of its line in `discovery-allow.txt`.
    pub fn rule_name(self) -> &'static str {
        match self {
            FakeReg::UnitCtrl => "UNIT_CTRL",
            FakeReg::UnitStatus => "UNIT_STATUS",
            FakeReg::UnitReset => "UNIT_RESET",
            FakeReg::Ctrl(_) => "CTRL",
            FakeReg::Ctr(_) => "CTR",
            FakeReg::FixedCtrl => "FIXED_CTRL",
            FakeReg::FixedCtr => "FIXED_CTR",
            FakeReg::GlobalCtrl => "GLOBAL_CTRL",
            FakeReg::GlobalStatus(_) => "GLOBAL_STATUS",
            FakeReg::Filter0 => "FILTER0",
            FakeReg::Freerun(_) => "FREERUN",
        }
    }

    /// Every per-unit register LIKWID's daemon can reach in a unit with `num_regs` counters.
    pub fn unit_registers(num_regs: u64) -> Vec<FakeReg> {
        let n = num_regs.min(4) as u8;
        let mut out =
            vec![FakeReg::UnitCtrl, FakeReg::UnitStatus, FakeReg::FixedCtrl, FakeReg::FixedCtr, FakeReg::Filter0];
        out.extend((0..n).map(FakeReg::Ctrl));
        out.extend((0..n).map(FakeReg::Ctr));
        out
    }
}

/// Where a register lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Space {
    /// MSR of the socket's first CPU; `address` is the MSR number.
    Msr,
    /// Physical memory (`/dev/mem`); `address` is the physical address.
    Mem,
    /// Config space of PCI device (domain, bus, devfn); `address` is the config offset.
    Pci((u8, u8, u8)),
}

/// How a register is accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    W32,
    W64,
    /// 64 bits as two 32-bit accesses, low half first (LIKWID's PCI HA/R3QPI/QPI and the iMC
    /// fixed control).
    Split,
}

impl Width {
    pub fn bytes(self) -> u8 {
        match self {
            Width::W32 => 4,
            Width::W64 | Width::Split => 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub space: Space,
    pub address: u64,
    pub width: Width,
}

/// LIKWID's per-range exceptions to the common register layout (see discovery-units.txt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    pub ctl32: bool,
    pub split: bool,
    pub fixed: bool,
    pub filter: bool,
}

/// Register spacing of MMIO and PCI units by counter width (LIKWID's spr_get_register_offset).
fn spacing(bit_width: u64) -> u64 {
    match bit_width {
        0..=8 => 1,
        9..=16 => 2,
        17..=32 => 4,
        _ => 8,
    }
}

/// Where `reg` of `unit` lives, as LIKWID v5.5.1's daemon computes it (spr_read_unit and
/// spr_write_unit in `src/access-daemon/accessDaemon.c`), or None for a register the unit does
/// not have: counters 4 and up, counters beyond num_regs, FILTER0 off a CHA, FIXED off an iMC,
/// UNIT_RESET, FREERUN and the GLOBAL registers (see `locate_global`).
pub fn locate(unit: &Unit, layout: Layout, reg: FakeReg) -> Option<Location> {
    let msr = unit.access == Access::Msr;
    let pci = unit.access == Access::Pci;
    let w = spacing(unit.bit_width);
    let pair = if pci && layout.split { Width::Split } else { Width::W64 };
    let index = |n: u8| (n < 4 && u64::from(n) < unit.num_regs).then_some(u64::from(n));
    let (offset, width) = match reg {
        FakeReg::UnitCtrl => (0, pair),
        FakeReg::UnitStatus => (unit.status_offset, pair),
        FakeReg::Ctrl(n) => {
            let n = index(n)?;
            match unit.access {
                Access::Msr => (unit.ctl_offset + n, Width::W64),
                Access::Mmio if layout.ctl32 => (unit.ctl_offset + 4 * n, Width::W32),
                Access::Pci if layout.split => (unit.ctl_offset + 4 * n, Width::Split),
                _ => (unit.ctl_offset + w * n, Width::W64),
            }
        }
        FakeReg::Ctr(n) => {
            let n = index(n)?;
            match unit.access {
                Access::Msr => (unit.ctr_offset + n, Width::W64),
                Access::Pci if layout.split => (unit.ctr_offset + 4 * n, Width::Split),
                _ => (unit.ctr_offset + w * n, Width::W64),
            }
        }
        FakeReg::Filter0 if layout.filter && msr => (0xE, Width::W64),
        FakeReg::FixedCtrl if layout.fixed && !pci => (0x54, if msr { Width::W64 } else { Width::Split }),
        FakeReg::FixedCtr if layout.fixed && !pci => (0x38, Width::W64),
        _ => return None,
    };
    let (space, base) = match unit.access {
        Access::Msr => (Space::Msr, unit.box_ctl),
        Access::Mmio => (Space::Mem, unit.box_ctl),
        Access::Pci => (Space::Pci(pci_address(unit.box_ctl)), unit.box_ctl & 0xFFF),
    };
    Some(Location { space, address: base.checked_add(offset)?, width })
}

/// (domain, bus, devfn) of a PCI unit's control address: domain[30:28] bus[27:20] devfn[19:12]
/// (LIKWID's UNCORE_DISCOVERY_PCI_* macros; Linux uncore_discovery.h the same).
pub fn pci_address(box_ctl: u64) -> (u8, u8, u8) {
    (((box_ctl >> 28) & 7) as u8, ((box_ctl >> 20) & 0xFF) as u8, ((box_ctl >> 12) & 0xFF) as u8)
}

/// The MSR of a GLOBAL register: only with an MSR global control (LIKWID's spr_read_global).
pub fn locate_global(global: &Global, reg: FakeReg) -> Option<u32> {
    if global.access != Access::Msr || global.global_ctl == 0 {
        return None;
    }
    let msr = match reg {
        FakeReg::GlobalCtrl => global.global_ctl,
        FakeReg::GlobalStatus(k) if k < 4 && u64::from(k) < global.num_status => {
            global.global_ctl + global.status_offset + u64::from(k)
        }
        _ => return None,
    };
    u32::try_from(msr).ok()
}

/// One line of discovery-units.txt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitKind {
    pub box_type: u16,
    pub name: String,
    /// PciDeviceIndex names of box_id 0, first match wins.
    pub bases: Vec<String>,
    pub max: u64,
    pub layout: Layout,
}

/// The units of one generation LIKWID addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitMap {
    pub kinds: Vec<UnitKind>,
}

pub const UNITS_TABLE: &str = include_str!("../pci/discovery-units.txt");
pub const ALLOW_TABLE: &str = include_str!("../pci/discovery-allow.txt");

/// PciDeviceIndex name of the uncore-wide control in every numbering.
pub const GLOBAL_DEVICE: &str = "MSR_UBOX_DEVICE";

impl UnitMap {
    /// Parses the lines of `generation` (the first word of each line).
    pub fn parse(text: &str, generation: &str) -> Result<UnitMap, ParseError> {
        let mut kinds = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            let err = |why: &str| ParseError { line: i + 1, message: format!("{why}: `{line}`") };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                [] => continue,
                [gen, box_type, name, bases, max, layout] => {
                    if gen != generation {
                        continue;
                    }
                    let mut l = Layout::default();
                    for flag in layout.split(',') {
                        match flag {
                            "ctl32" => l.ctl32 = true,
                            "split" => l.split = true,
                            "fixed" => l.fixed = true,
                            "filter" => l.filter = true,
                            "-" => {}
                            _ => return Err(err("unknown layout flag")),
                        }
                    }
                    kinds.push(UnitKind {
                        box_type: box_type.parse().map_err(|_| err("bad type"))?,
                        name: name.to_string(),
                        bases: bases.split('|').map(str::to_string).collect(),
                        max: max.parse().ok().filter(|m| (1..=1024).contains(m)).ok_or_else(|| err("bad count"))?,
                        layout: l,
                    });
                }
                _ => return Err(err("expected `GEN TYPE NAME BASE MAX LAYOUT`")),
            }
        }
        Ok(UnitMap { kinds })
    }

    /// The built-in map of a CPU table name, if that CPU has discovery.
    pub fn for_model(model: &str) -> Option<&'static UnitMap> {
        // Parsing the maps costs about 0.5 M instructions: not at every start of a daemon on a
        // CPU that has no discovery tables.
        if !["spr", "emr", "gnr", "srf"].contains(&model) {
            return None;
        }
        static MAPS: OnceLock<Vec<(&'static str, UnitMap)>> = OnceLock::new();
        let maps = MAPS.get_or_init(|| {
            ["spr", "emr", "gnr", "srf"]
                .iter()
                .map(|g| (*g, UnitMap::parse(UNITS_TABLE, if *g == "srf" { "gnr" } else { g }).expect("units table")))
                .collect()
        });
        maps.iter().find(|(g, _)| *g == model).map(|(_, m)| m)
    }

    pub fn kind(&self, box_type: u16) -> Option<&UnitKind> {
        self.kinds.iter().find(|k| k.box_type == box_type)
    }

    /// The unit a client of `numbering` means by device index `device`: (its kind, box_id).
    pub fn unit_of(&self, numbering: Numbering, device: i32) -> Option<(&UnitKind, u16)> {
        self.kinds.iter().find_map(|k| {
            let base = k.bases.iter().find_map(|b| numbering.index(b))?;
            let id = i64::from(device) - i64::from(base);
            (0..k.max as i64).contains(&id).then_some((k, id as u16))
        })
    }

    /// The device index a client of `numbering` uses for unit (type, id).
    pub fn device_of(&self, numbering: Numbering, box_type: u16, box_id: u16) -> Option<i32> {
        let k = self.kind(box_type).filter(|k| u64::from(box_id) < k.max)?;
        k.bases.iter().find_map(|b| numbering.index(b)).map(|base| base + i32::from(box_id))
    }
}

/// What a client may do with one FAKE_UNC register (a line of discovery-allow.txt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterRule {
    pub readable: bool,
    /// None: never written; Some(0): read-only (an unchanged write is accepted).
    pub write_mask: Option<u64>,
}

impl RegisterRule {
    pub fn parse(text: &str) -> Result<Vec<(String, RegisterRule)>, ParseError> {
        let mut out: Vec<(String, RegisterRule)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            let err = |why: &str| ParseError { line: i + 1, message: format!("{why}: `{line}`") };
            let words: Vec<&str> = line.split_whitespace().collect();
            let (name, read, mask) = match words[..] {
                [] => continue,
                [name, read, mask] => (name, read, mask),
                _ => return Err(err("expected `REGISTER READ WRITEMASK`")),
            };
            let readable = match read {
                "r" => true,
                "-" => false,
                _ => return Err(err("READ must be r or -")),
            };
            let write_mask = match mask {
                "-" => None,
                m => Some(
                    m.strip_prefix("0x")
                        .and_then(|h| u64::from_str_radix(h, 16).ok())
                        .ok_or_else(|| err("bad mask"))?,
                ),
            };
            if out.iter().any(|(n, _)| n == name) {
                return Err(err("register listed twice"));
            }
            out.push((name.to_string(), RegisterRule { readable, write_mask }));
        }
        Ok(out)
    }

    /// The built-in rule for `reg`, None when the register is not listed.
    pub fn of(reg: FakeReg) -> Option<RegisterRule> {
        static RULES: OnceLock<Vec<(String, RegisterRule)>> = OnceLock::new();
        let rules = RULES.get_or_init(|| RegisterRule::parse(ALLOW_TABLE).expect("discovery allow table parses"));
        rules.iter().find(|(n, _)| n == reg.rule_name()).map(|(_, r)| *r)
    }
}
