//! PCI uncore data: LIKWID's `PciDeviceIndex` numberings, the uncore devices of each Intel
//! server generation, and the config-space registers each device type may touch. Pure; the
//! tables are text files in `pci/` (see its README for sources).

use super::ParseError;

mod parse;
pub use parse::{parse_devices, parse_numbering, parse_rules, DeviceEntry, PciRule};

/// The built-in tables of `pci/`, parsed at build time by `parse` (build.rs compiles
/// `pci/parse.rs`): `INDEX_5_2`, `DEVICES_SKX`, `ALLOW_SKX`, ... Parsing them at every start
/// cost the daemon about 0.12 M of its 0.66 M start-up instructions (callgrind).
mod builtin {
    use super::{DeviceEntry, NameTable, PciRule};
    include!(concat!(env!("OUT_DIR"), "/builtin_pci.rs"));
}

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

    fn table(self) -> &'static NameTable {
        match self {
            Numbering::Likwid52 => &builtin::INDEX_5_2,
            Numbering::Likwid53 => &builtin::INDEX_5_3,
            Numbering::Likwid54 => &builtin::INDEX_5_4,
        }
    }

    /// The enum name of `index` (MSR_DEV for 0), or None outside the enum.
    pub fn name(self, index: i32) -> Option<&'static str> {
        let table = self.table();
        table.entries.binary_search_by_key(&index, |(i, ..)| *i).ok().and_then(|k| table.name_at(k))
    }

    pub fn index(self, name: &str) -> Option<i32> {
        self.table().iter().find(|(_, n)| *n == name).map(|(i, _)| i)
    }
}

/// A numbering as build.rs writes it: every name in one string, and per entry its index and
/// where its name starts and ends in that string (sorted by index). Without a pointer per
/// entry the table needs no relocation at start.
#[derive(Debug)]
pub struct NameTable {
    names: &'static str,
    entries: &'static [(i32, u16, u16)],
}

impl NameTable {
    fn name_at(&self, k: usize) -> Option<&'static str> {
        let (_, start, end) = *self.entries.get(k)?;
        self.names.get(usize::from(start)..usize::from(end))
    }

    /// (index, name) of every entry, in index order, as `parse_numbering` gives them.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &'static str)> + '_ {
        (0..self.entries.len()).filter_map(|k| Some((self.entries[k].0, self.name_at(k)?)))
    }
}

/// One server generation's uncore devices and their register rules.
#[derive(Debug)]
pub struct Generation {
    pub devices: &'static [DeviceEntry<'static>],
    pub rules: &'static [PciRule<'static>],
}

impl Generation {
    /// The rule covering `offset` of a device of type `kind`.
    pub fn rule(&self, kind: &str, offset: u32) -> Option<&'static PciRule<'static>> {
        self.rules.iter().find(|r| {
            r.kind == kind && (r.first..=r.last).contains(&offset) && (offset - r.first) % u32::from(r.width) == 0
        })
    }

    /// The generation for a CPU model name (skx, icx), if it has PCI uncore.
    pub fn for_model(model: &str) -> Option<&'static Generation> {
        static SKX: Generation = Generation { devices: builtin::DEVICES_SKX, rules: builtin::ALLOW_SKX };
        static ICX: Generation = Generation { devices: builtin::DEVICES_ICX, rules: builtin::ALLOW_ICX };
        match model {
            "skx" => Some(&SKX),
            "icx" => Some(&ICX),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
