//! A memo of the policy's decisions per MSR address. `Policy` is immutable once built (table,
//! ceiling and read-only switch are fixed at start), so a remembered decision is the decision:
//! the memo changes how fast a request is checked, never what the check says.

use super::{Policy, WriteRule};
use std::cell::Cell;

/// Direct-mapped slots: a session reads the same few dozen counters over and over, and the
/// table's binary search (plus the ceiling's for writes) cost about 170 instructions per
/// request, a third of the daemon's work per batched read (callgrind).
const SLOTS: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The register, with `FILLED` once a decision is remembered and `READABLE` when reading it
    /// is allowed: a read's hit is one comparison (`reg | FILLED | READABLE`).
    key: u64,
    write: WriteRule,
}

const FILLED: u64 = 1 << 32;
const READABLE: u64 = 1 << 33;

const EMPTY: Slot = Slot { key: 0, write: WriteRule::Denied };

/// What the policy says about one MSR: readable, and how a write is decided.
#[derive(Debug, Clone)]
pub struct Decisions {
    slots: Box<[Cell<Slot>; SLOTS]>,
}

impl Default for Decisions {
    fn default() -> Decisions {
        Decisions { slots: Box::new([const { Cell::new(EMPTY) }; SLOTS]) }
    }
}

impl Decisions {
    #[inline(always)]
    fn cell(&self, reg: u32) -> &Cell<Slot> {
        &self.slots[(reg ^ (reg >> 8) ^ (reg >> 16)) as usize % SLOTS]
    }

    /// `policy`'s decision for MSR `reg`. Must always be asked with the same policy.
    /// Inlined into the request path; a miss asks the policy out of line.
    #[inline(always)]
    pub fn of(&self, policy: &Policy, reg: u32) -> (bool, WriteRule) {
        let cell = self.cell(reg);
        let slot = cell.get();
        if slot.key & !READABLE == u64::from(reg) | FILLED {
            return (slot.key & READABLE != 0, slot.write);
        }
        Decisions::fill(cell, policy, reg)
    }

    /// Whether `policy` lets MSR `reg` be read (`of`'s first half). A register remembered as
    /// unreadable is asked again (a refused read is rare, and audited at far greater cost).
    #[inline(always)]
    pub fn readable(&self, policy: &Policy, reg: u32) -> bool {
        let cell = self.cell(reg);
        if cell.get().key == u64::from(reg) | FILLED | READABLE {
            return true;
        }
        Decisions::fill(cell, policy, reg).0
    }

    #[inline(never)]
    fn fill(cell: &Cell<Slot>, policy: &Policy, reg: u32) -> (bool, WriteRule) {
        let (readable, write) = (policy.may_read(reg), policy.write_rule(reg));
        let key = u64::from(reg) | FILLED | if readable { READABLE } else { 0 };
        cell.set(Slot { key, write });
        (readable, write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_decisions_equal_the_policy_for_colliding_registers() {
        let policy = Policy::new("test", "0xC1 0xFFFF\n0x38F 0x0\n0x1C1 0xFF\n").unwrap().read_only();
        let writable = Policy::new("test", "0xC1 0xFFFF\n0x38F 0x0\n0x1C1 0xFF\n").unwrap();
        for p in [&policy, &writable] {
            let memo = Decisions::default();
            // 0xC1 and 0x1C1 share a slot; 0x2C1 is unlisted. Ask twice, interleaved.
            for _ in 0..2 {
                for reg in [0xC1, 0x1C1, 0x2C1, 0x38F, 0xC1] {
                    assert_eq!(memo.of(p, reg), (p.may_read(reg), p.write_rule(reg)), "reg {reg:#x}");
                    assert_eq!(memo.readable(p, reg), p.may_read(reg), "reg {reg:#x}");
                }
            }
        }
    }

    /// Every register of every built-in table (each rule's first and last, their neighbours
    /// outside it, and up to 64 inside), read-only and not, asked through one memo per policy
    /// in table order and again in reverse (so slots are shared, overwritten and hit): the
    /// memo's answers are the policy's, for `of` and for `readable`, alternating.
    #[test]
    fn remembered_decisions_equal_every_builtin_table() {
        for model in crate::policy::cpu::CPU_MODELS {
            let table = Policy::builtin(model);
            for p in [table.clone(), table.read_only()] {
                let mut regs = Vec::new();
                for rule in p.rules() {
                    let inside = (rule.first..=rule.last).take(64);
                    regs.extend([rule.first.wrapping_sub(1), rule.last, rule.last.wrapping_add(1)]);
                    regs.extend(inside);
                }
                let memo = Decisions::default();
                for (i, &reg) in regs.iter().chain(regs.iter().rev()).enumerate() {
                    let want = (p.may_read(reg), p.write_rule(reg));
                    if i % 2 == 0 {
                        assert_eq!(memo.readable(&p, reg), want.0, "{} reg {reg:#x}", model.name);
                        assert_eq!(memo.of(&p, reg), want, "{} reg {reg:#x}", model.name);
                    } else {
                        assert_eq!(memo.of(&p, reg), want, "{} reg {reg:#x}", model.name);
                        assert_eq!(memo.readable(&p, reg), want.0, "{} reg {reg:#x}", model.name);
                    }
                }
            }
        }
    }
}
