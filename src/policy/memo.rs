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
    reg: u32,
    filled: bool,
    readable: bool,
    write: WriteRule,
}

const EMPTY: Slot = Slot { reg: 0, filled: false, readable: false, write: WriteRule::Denied };

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
    /// `policy`'s decision for MSR `reg`. Must always be asked with the same policy.
    /// Inlined into the request path; a miss asks the policy out of line.
    #[inline(always)]
    pub fn of(&self, policy: &Policy, reg: u32) -> (bool, WriteRule) {
        let cell = &self.slots[(reg ^ (reg >> 8) ^ (reg >> 16)) as usize % SLOTS];
        let slot = cell.get();
        if slot.filled && slot.reg == reg {
            return (slot.readable, slot.write);
        }
        Decisions::fill(cell, policy, reg)
    }

    #[inline(never)]
    fn fill(cell: &Cell<Slot>, policy: &Policy, reg: u32) -> (bool, WriteRule) {
        let (readable, write) = (policy.may_read(reg), policy.write_rule(reg));
        cell.set(Slot { reg, filled: true, readable, write });
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
                }
            }
        }
    }
}
