//! Register allowlists: one `Rule` type, one parser, the built-in tables, one decision. Pure.
//!
//! Table format (msr-safe's allowlist plus inclusive ranges):
//! `0xADDR[-0xLAST] 0xWRITEMASK  # comment`. Every listed register is readable; a write
//! stores `(new & mask) | (old & !mask)`, and mask 0 means read-only: a write that would
//! change it is denied, one that rewrites its current value is accepted without touching the
//! register (LIKWID writes 0 to the read-only PEBS_ENABLE on Skylake-SP and aborts if that
//! fails). Anything not listed is denied. On top of every table sits the ceiling table
//! (`tables/never_writable.txt`): a register listed there never gets write bits beyond its
//! ceiling, whatever a table says, and one with ceiling 0 is never written at all.

mod cpu;
mod cpuinfo;
pub mod discovery;
mod memo;
pub mod pci;

pub use cpu::{CpuIdentity, CpuModel, Vendor, CPU_MODELS};
pub use cpuinfo::{cpu_sockets, parse_cpuinfo, sockets_of, CpuInfo};
pub use memo::Decisions;

use std::fmt;

/// One allowlist line: registers `first..=last`, readable, writable under `write_mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub first: u32,
    pub last: u32,
    pub write_mask: u64,
}

/// A table line that does not parse, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn parse_hex(word: &str) -> Option<u64> {
    let digits = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

fn parse_address(word: &str) -> Option<u32> {
    parse_hex(word).and_then(|a| u32::try_from(a).ok())
}

/// Parses an allowlist. Rules come back sorted by address; overlapping rules are an error,
/// since the table would then say two things about one register.
pub fn parse(text: &str) -> Result<Vec<Rule>, ParseError> {
    let mut rules = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let err = |message: String| ParseError { line, message };
        let words: Vec<&str> = content.split_whitespace().collect();
        let [addr, mask] = words[..] else {
            return Err(err(format!("expected `0xADDR[-0xLAST] 0xWRITEMASK`, got `{content}`")));
        };
        let (first, last) = match addr.split_once('-') {
            Some((a, b)) => (parse_address(a), parse_address(b)),
            None => (parse_address(addr), parse_address(addr)),
        };
        let (Some(first), Some(last)) = (first, last) else {
            return Err(err(format!("`{addr}` is not a 32-bit hex address or range")));
        };
        if last < first {
            return Err(err(format!("range `{addr}` ends before it starts")));
        }
        let write_mask = parse_hex(mask).ok_or_else(|| err(format!("`{mask}` is not a 64-bit hex mask")))?;
        rules.push((line, Rule { first, last, write_mask }));
    }
    rules.sort_by_key(|(_, r)| r.first);
    for pair in rules.windows(2) {
        let ((_, a), (line, b)) = (pair[0], pair[1]);
        if b.first <= a.last {
            return Err(ParseError {
                line,
                message: format!("{:#x}-{:#x} overlaps {:#x}-{:#x}", b.first, b.last, a.first, a.last),
            });
        }
    }
    Ok(rules.into_iter().map(|(_, r)| r).collect())
}

fn find(rules: &[Rule], reg: u32) -> Option<&Rule> {
    let i = rules.partition_point(|r| r.last < reg);
    rules.get(i).filter(|r| r.first <= reg)
}

/// The registers list that caps every table's write masks.
pub const CEILING_TABLE: &str = include_str!("tables/never_writable.txt");
/// Settings whose changes persist after a session (never restored after a crash).
pub const PERSISTENT_TABLE: &str = include_str!("tables/persistent.txt");

/// Whether a write to MSR `reg` is a setting meant to outlive the session (prefetchers,
/// uncore frequency) rather than counter programming, which is undone after a crash.
pub fn persists(reg: u32) -> bool {
    static PERSISTENT: std::sync::OnceLock<Vec<Rule>> = std::sync::OnceLock::new();
    find(PERSISTENT.get_or_init(|| parse(PERSISTENT_TABLE).expect("built-in persistent table parses")), reg).is_some()
}

/// The effective policy for one machine: a table and the ceiling.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where the table came from, for messages and `likwid-access policy`.
    pub source: String,
    rules: Vec<Rule>,
    ceiling: Vec<Rule>,
    /// The site's switch for shared nodes: every write denied.
    read_only: bool,
}

impl Policy {
    pub fn new(source: impl Into<String>, table: &str) -> Result<Policy, ParseError> {
        let ceiling = parse(CEILING_TABLE).expect("built-in ceiling table parses");
        Ok(Policy { source: source.into(), rules: parse(table)?, ceiling, read_only: false })
    }

    /// The built-in policy for a CPU model.
    pub fn builtin(model: &CpuModel) -> Policy {
        Policy::new(format!("built-in table {} ({})", model.name, model.description), model.table)
            .expect("built-in tables parse")
    }

    pub fn may_read(&self, reg: u32) -> bool {
        find(&self.rules, reg).is_some()
    }

    /// The same policy with every write denied.
    pub fn read_only(self) -> Policy {
        Policy { source: format!("{}, read-only", self.source), read_only: true, ..self }
    }

    /// How a write to `reg` is decided.
    pub fn write_rule(&self, reg: u32) -> WriteRule {
        let Some(rule) = find(&self.rules, reg).filter(|_| !self.read_only) else {
            return WriteRule::Denied;
        };
        let cap = find(&self.ceiling, reg).map_or(u64::MAX, |r| r.write_mask);
        match rule.write_mask & cap {
            0 if cap == 0 => WriteRule::Denied,
            0 => WriteRule::Unchanged,
            mask => WriteRule::Masked(mask),
        }
    }

    /// The bits a write may change, or None when the register is not writable.
    pub fn write_mask(&self, reg: u32) -> Option<u64> {
        match self.write_rule(reg) {
            WriteRule::Masked(mask) => Some(mask),
            WriteRule::Unchanged | WriteRule::Denied => None,
        }
    }

    /// Whether the table or the ceiling says anything about MSR `reg` (a discovered uncore unit
    /// must not contain such a register).
    pub fn lists(&self, reg: u32) -> bool {
        find(&self.rules, reg).is_some() || find(&self.ceiling, reg).is_some()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// The decision for a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRule {
    /// Store `(new & mask) | (old & !mask)`.
    Masked(u64),
    /// Read-only: accept only a value equal to the current one, and write nothing.
    Unchanged,
    /// Unlisted, or never writable.
    Denied,
}

/// What a masked write stores.
pub fn apply_mask(old: u64, new: u64, mask: u64) -> u64 {
    (new & mask) | (old & !mask)
}

#[cfg(test)]
mod tests;
