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
pub mod cpulist;
pub mod discovery;
pub mod lines;
mod memo;
pub mod pci;
mod rules;

pub use cpu::{CpuModel, CPU_MODELS};
pub use cpuinfo::{cpu_sockets, parse_cpuinfo, sockets_of, CpuInfo};
pub use memo::Decisions;
#[cfg(test)]
use rules::two_words;
pub use rules::{parse, ParseError, Rule};

use std::borrow::Cow;

fn find(rules: &[Rule], reg: u32) -> Option<&Rule> {
    let i = rules.partition_point(|r| r.last < reg);
    rules.get(i).filter(|r| r.first <= reg)
}

/// The registers list that caps every table's write masks.
pub const CEILING_TABLE: &str = include_str!("tables/never_writable.txt");
/// Settings whose changes persist after a session (never restored after a crash). The
/// daemon uses the table compiled by build.rs; the text is kept for the test that compares them.
#[cfg(test)]
pub const PERSISTENT_TABLE: &str = include_str!("tables/persistent.txt");

/// The built-in tables, parsed at build time by `parse` (build.rs compiles `rules.rs`): a
/// `static NAME: &[Rule]` per `tables/name.txt`, and `fn parsed(name) -> Option<&'static [Rule]>`. Parsing them at every
/// start cost the daemon about 1.9 M of its 3.1 M start-up instructions (callgrind).
mod builtin {
    use super::Rule;
    include!(concat!(env!("OUT_DIR"), "/builtin_tables.rs"));
}

/// Whether a write to MSR `reg` is a setting meant to outlive the session (prefetchers,
/// uncore frequency) rather than counter programming, which is undone after a crash.
pub fn persists(reg: u32) -> bool {
    find(builtin::PERSISTENT, reg).is_some()
}

/// The effective policy for one machine: a table and the ceiling.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where the table came from, for messages and `likwid-access policy`.
    pub source: String,
    rules: Cow<'static, [Rule]>,
    ceiling: &'static [Rule],
    /// The site's switch for shared nodes: every write denied.
    read_only: bool,
}

impl Policy {
    pub fn new(source: impl Into<String>, table: &str) -> Result<Policy, ParseError> {
        Ok(Policy::with_rules(source, Cow::Owned(parse(table)?)))
    }

    fn with_rules(source: impl Into<String>, rules: Cow<'static, [Rule]>) -> Policy {
        Policy { source: source.into(), rules, ceiling: builtin::NEVER_WRITABLE, read_only: false }
    }

    /// The built-in policy for a CPU model. A model without a table (a test makes sure there
    /// is none) would get an empty one: everything denied.
    pub fn builtin(model: &CpuModel) -> Policy {
        let source = format!("built-in table {} ({})", model.name, model.description);
        Policy::with_rules(source, Cow::Borrowed(builtin::parsed(model.name).unwrap_or_default()))
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
        let cap = find(self.ceiling, reg).map_or(u64::MAX, |r| r.write_mask);
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
        find(&self.rules, reg).is_some() || find(self.ceiling, reg).is_some()
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
