//! PCI uncore data: LIKWID's `PciDeviceIndex` numberings, the uncore devices of each Intel
//! server generation, and the config-space registers each device type may touch. Pure; the
//! tables are text files in `pci/` (see its README for sources).

use super::ParseError;
use std::sync::OnceLock;

/// Which LIKWID release's `PciDeviceIndex` enum a client speaks: 5.2.x has 55 entries,
/// 5.3.0 renumbered it (317), 5.4.0 again (499, unchanged through 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    Likwid52,
    Likwid53,
    Likwid54,
}

impl Numbering {
    pub fn parse(text: &str) -> Option<Numbering> {
        match text.trim() {
            "5.2" => Some(Numbering::Likwid52),
            "5.3" => Some(Numbering::Likwid53),
            "5.4" | "5.5" => Some(Numbering::Likwid54),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Numbering::Likwid52 => "5.2",
            Numbering::Likwid53 => "5.3",
            Numbering::Likwid54 => "5.4",
        }
    }

    fn table(self) -> &'static [(i32, String)] {
        static V52: OnceLock<Vec<(i32, String)>> = OnceLock::new();
        static V53: OnceLock<Vec<(i32, String)>> = OnceLock::new();
        static V54: OnceLock<Vec<(i32, String)>> = OnceLock::new();
        let (cell, text) = match self {
            Numbering::Likwid52 => (&V52, include_str!("pci/index-5.2.txt")),
            Numbering::Likwid53 => (&V53, include_str!("pci/index-5.3.txt")),
            Numbering::Likwid54 => (&V54, include_str!("pci/index-5.4.txt")),
        };
        cell.get_or_init(|| parse_numbering(text).expect("built-in PciDeviceIndex tables parse"))
    }

    /// The enum name of `index` (MSR_DEV for 0), or None outside the enum.
    pub fn name(self, index: i32) -> Option<&'static str> {
        let table = self.table();
        table.binary_search_by_key(&index, |(i, _)| *i).ok().map(|i| table[i].1.as_str())
    }

    pub fn index(self, name: &str) -> Option<i32> {
        self.table().iter().find(|(_, n)| n == name).map(|(i, _)| *i)
    }
}

fn content(raw: &str) -> &str {
    raw.split('#').next().unwrap_or("").trim()
}

fn hex(word: &str) -> Option<u64> {
    u64::from_str_radix(word.strip_prefix("0x").or_else(|| word.strip_prefix("0X"))?, 16).ok()
}

/// `NUMBER NAME` lines, sorted by number, numbers unique.
pub fn parse_numbering(text: &str) -> Result<Vec<(i32, String)>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = content(raw);
        if line.is_empty() {
            continue;
        }
        let err = |message: String| ParseError { line: i + 1, message };
        let mut words = line.split_whitespace();
        let (Some(n), Some(name), None) = (words.next(), words.next(), words.next()) else {
            return Err(err(format!("expected `NUMBER NAME`, got `{line}`")));
        };
        out.push((n.parse().map_err(|_| err(format!("`{n}` is not a number")))?, name.to_string()));
    }
    out.sort_by_key(|(n, _)| *n);
    if out.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(ParseError { line: 0, message: "a number is listed twice".into() });
    }
    Ok(out)
}

/// One uncore device LIKWID uses: its PciDeviceIndex name, box type and PCI identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    pub name: String,
    pub kind: String,
    pub dev: u8,
    pub func: u8,
    pub vendor: u16,
    pub device: u16,
}

/// `NAME TYPE DD.F VENDOR:DEVICE` lines.
pub fn parse_devices(text: &str) -> Result<Vec<DeviceEntry>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = content(raw);
        if line.is_empty() {
            continue;
        }
        let err =
            || ParseError { line: i + 1, message: format!("expected `NAME TYPE DD.F VENDOR:DEVICE`, got `{line}`") };
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, kind, devfn, ids] = words[..] else { return Err(err()) };
        let (dev, func) = devfn.split_once('.').ok_or_else(err)?;
        let (vendor, device) = ids.split_once(':').ok_or_else(err)?;
        out.push(DeviceEntry {
            name: name.to_string(),
            kind: kind.to_string(),
            dev: u8::from_str_radix(dev, 16).map_err(|_| err())?,
            func: u8::from_str_radix(func, 16).map_err(|_| err())?,
            vendor: u16::from_str_radix(vendor, 16).map_err(|_| err())?,
            device: u16::from_str_radix(device, 16).map_err(|_| err())?,
        });
    }
    Ok(out)
}

/// Config-space registers of one device type: offsets `first..=last` in steps of the width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciRule {
    pub kind: String,
    pub first: u32,
    pub last: u32,
    pub write_mask: u64,
    /// Access size in bytes (4 or 8).
    pub width: u8,
}

/// `TYPE 0xOFF[-0xLAST] 0xWRITEMASK WIDTH` lines.
pub fn parse_rules(text: &str) -> Result<Vec<PciRule>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = content(raw);
        if line.is_empty() {
            continue;
        }
        let err = |why: &str| ParseError { line: i + 1, message: format!("{why}: `{line}`") };
        let words: Vec<&str> = line.split_whitespace().collect();
        let [kind, range, mask, width] = words[..] else {
            return Err(err("expected `TYPE 0xOFF[-0xLAST] 0xMASK WIDTH`"));
        };
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let first = hex(a).and_then(|v| u32::try_from(v).ok()).ok_or_else(|| err("bad offset"))?;
        let last = hex(b).and_then(|v| u32::try_from(v).ok()).ok_or_else(|| err("bad offset"))?;
        let width: u8 = match width {
            "32" => 4,
            "64" => 8,
            _ => return Err(err("width must be 32 or 64")),
        };
        if last < first || first % u32::from(width) != 0 || (last - first) % u32::from(width) != 0 || last >= 4096 {
            return Err(err("range must be aligned to its width and inside 4 KiB of config space"));
        }
        let write_mask = hex(mask).ok_or_else(|| err("bad mask"))?;
        if width == 4 && write_mask >> 32 != 0 {
            return Err(err("mask wider than a 32-bit register"));
        }
        out.push(PciRule { kind: kind.to_string(), first, last, write_mask, width });
    }
    Ok(out)
}

/// One server generation's uncore devices and their register rules.
#[derive(Debug)]
pub struct Generation {
    pub devices: Vec<DeviceEntry>,
    pub rules: Vec<PciRule>,
}

impl Generation {
    /// The rule covering `offset` of a device of type `kind`.
    pub fn rule(&self, kind: &str, offset: u32) -> Option<&PciRule> {
        self.rules.iter().find(|r| {
            r.kind == kind && (r.first..=r.last).contains(&offset) && (offset - r.first) % u32::from(r.width) == 0
        })
    }

    /// The generation for a CPU model name (skx, icx), if it has PCI uncore.
    pub fn for_model(model: &str) -> Option<&'static Generation> {
        static SKX: OnceLock<Generation> = OnceLock::new();
        static ICX: OnceLock<Generation> = OnceLock::new();
        let (cell, devices, rules) = match model {
            "skx" => (&SKX, include_str!("pci/devices-skx.txt"), include_str!("pci/allow-skx.txt")),
            "icx" => (&ICX, include_str!("pci/devices-icx.txt"), include_str!("pci/allow-icx.txt")),
            _ => return None,
        };
        Some(cell.get_or_init(|| Generation {
            devices: parse_devices(devices).expect("built-in PCI device tables parse"),
            rules: parse_rules(rules).expect("built-in PCI register tables parse"),
        }))
    }
}

#[cfg(test)]
mod tests;
