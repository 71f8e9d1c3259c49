//! The parsers of the PCI uncore tables (`index-*.txt`, `devices-*.txt`, `allow-*.txt`). Pure
//! and std-only: build.rs compiles this same file to turn the built-in tables into statics, so
//! the daemon does not parse them at every start, and the crate uses it for tests and fuzzing.

use super::ParseError;

fn content(raw: &str) -> &str {
    raw.split('#').next().unwrap_or("").trim()
}

fn hex(word: &str) -> Option<u64> {
    u64::from_str_radix(word.strip_prefix("0x").or_else(|| word.strip_prefix("0X"))?, 16).ok()
}

/// `NUMBER NAME` lines, sorted by number, numbers unique.
pub fn parse_numbering(text: &str) -> Result<Vec<(i32, &str)>, ParseError> {
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
        out.push((n.parse().map_err(|_| err(format!("`{n}` is not a number")))?, name));
    }
    out.sort_by_key(|(n, _)| *n);
    if out.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(ParseError { line: 0, message: "a number is listed twice".into() });
    }
    Ok(out)
}

/// One uncore device LIKWID uses: its PciDeviceIndex name, box type and PCI identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub dev: u8,
    pub func: u8,
    pub vendor: u16,
    pub device: u16,
}

/// `NAME TYPE DD.F VENDOR:DEVICE` lines.
pub fn parse_devices(text: &str) -> Result<Vec<DeviceEntry<'_>>, ParseError> {
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
            name,
            kind,
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
pub struct PciRule<'a> {
    pub kind: &'a str,
    pub first: u32,
    pub last: u32,
    pub write_mask: u64,
    /// Access size in bytes (4 or 8).
    pub width: u8,
}

/// `TYPE 0xOFF[-0xLAST] 0xWRITEMASK WIDTH` lines.
pub fn parse_rules(text: &str) -> Result<Vec<PciRule<'_>>, ParseError> {
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
        out.push(PciRule { kind, first, last, write_mask, width });
    }
    Ok(out)
}
