//! A daemon session driven by arbitrary requests against a simulated machine, beside a model
//! of every register it touched. The model changes only what the policy lets a write change,
//! so the store matching the model after every step means no bit outside a write mask ever
//! changed, no denied access succeeded, and every read returned the register's value. After
//! the client vanishes (no EXIT), every journaled register must be back where it started.

use super::{peer, Machine, Machines};
use crate::daemon::{Ended, Session};
use crate::device::RegisterDevice;
use crate::engine::pci_write_rule;
use crate::policy::pci::Numbering;
use crate::policy::{apply_mask, Policy, WriteRule};
use crate::wire::{self, Record};
use std::collections::BTreeMap;

/// A register as (cpu or socket, device, address).
type Key = (u32, i32, u32);

/// What the model knows of one register.
#[derive(Debug, Clone, Copy)]
struct Seen {
    rule: WriteRule,
    /// The bits the register holds (a 32-bit PCI register keeps the low half of a write).
    bits: u64,
    value: u64,
}

impl Machine {
    /// The register's write rule, the bits its width holds, and its value read past the
    /// engine; None for a register the machine does not have.
    fn probe(&self, (cpu, device, reg): Key) -> Option<Seen> {
        if device == wire::MSR_DEV {
            let file = self.msrs.get(&cpu)?;
            return Some(Seen { rule: self.policy.write_rule(reg), bits: u64::MAX, value: file.read(reg).ok()? });
        }
        let name = Numbering::Likwid52.name(device)?;
        let (kind, config) = self.pci.get(cpu, name)?;
        let rule = self.generation()?.rule(kind, reg);
        let width = rule.map_or(4, |r| r.width);
        let bits = if width == 8 { u64::MAX } else { u64::from(u32::MAX) };
        let value = config.read(reg, width).ok()?;
        Some(Seen { rule: rule.map_or(WriteRule::Denied, pci_write_rule), bits, value })
    }

    fn value(&self, key: Key) -> Option<u64> {
        self.probe(key).map(|seen| seen.value)
    }
}

/// Turns bytes into requests that mostly name registers the policy lists, so the fuzzer gets
/// past NODEV and RESTREG quickly; some are raw, to keep every path reachable.
fn requests(machine: &Machine, policy: &Policy, data: &[u8]) -> Vec<Record> {
    let pci_rules = machine.generation().map(|g| g.rules).unwrap_or_default();
    let pci_names: Vec<i32> = machine.pci.list().filter_map(|(_, n)| Numbering::Likwid52.index(n)).collect();
    data.chunks_exact(12)
        .map(|c| {
            let (op, pick) = (c[0], u16::from_le_bytes([c[2], c[3]]));
            let value = u64::from_le_bytes(c[4..12].try_into().expect("8 bytes"));
            let kind = match op & 3 {
                0 => wire::Kind::Read.code(),
                1 | 2 => wire::Kind::Write.code(),
                _ if op & 4 != 0 => wire::Kind::Check.code(),
                // Raw: any type, known or not.
                _ => value as i32,
            };
            let cpu = if op & 8 != 0 { u32::from(c[1]) << 24 | u32::from(c[1]) } else { u32::from(c[1] % 5) };
            let (device, reg) = match (op >> 4) & 3 {
                0 | 1 => {
                    let rule = policy.rules().get(usize::from(pick) % policy.rules().len().max(1));
                    (wire::MSR_DEV, rule.map_or(0, |r| r.first + u32::from(c[1]) % (r.last - r.first + 1)))
                }
                2 if !pci_rules.is_empty() && !pci_names.is_empty() => {
                    let rule = &pci_rules[usize::from(pick) % pci_rules.len()];
                    let steps = (rule.last - rule.first) / u32::from(rule.width) + 1;
                    let device = pci_names[usize::from(c[1]) % pci_names.len()];
                    (device, rule.first + u32::from(c[1]) % steps * u32::from(rule.width))
                }
                _ => (i32::from(op >> 6) * i32::from(pick), (value >> 32) as u32),
            };
            Record { kind, ..Record::request(wire::Kind::Read, cpu, device, reg, value) }
        })
        .collect()
}

/// Applies one reply to the model, checking it against the policy and the model.
fn settle(model: &mut BTreeMap<Key, Seen>, req: &Record, reply: &Record) {
    let key = (req.cpu, req.device, req.reg);
    let ok = reply.errorcode == wire::ERR_NOERROR;
    let Some(Seen { rule, bits, value }) = model.get_mut(&key) else {
        assert!(!ok || req.kind == wire::Kind::Check.code(), "{req:?} succeeded on a register the machine lacks");
        return;
    };
    match wire::Kind::from_code(req.kind) {
        Some(wire::Kind::Read) if ok => assert_eq!(reply.data, *value, "read of {key:x?}"),
        Some(wire::Kind::Write) if ok => match *rule {
            WriteRule::Masked(mask) => *value = apply_mask(*value, req.data, mask) & *bits,
            WriteRule::Unchanged => assert_eq!(req.data & *bits, *value, "read-only {key:x?} accepted a change"),
            WriteRule::Denied => panic!("write to {key:x?} succeeded, policy denies it"),
        },
        _ => {}
    }
}

/// The first byte: bit 0 pinned workers, bit 1 batches of up to 8 requests, bit 2 EXIT at the
/// end (the registers then keep their values), bit 3 the Skylake-SP. Then 12 bytes a request.
pub fn session(machines: &Machines, data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else { return };
    let machine = machines.pick(flags);
    let reqs = requests(machine, &machine.policy, &body[..body.len().min(64 * 1024)]);
    let mut model = BTreeMap::new();
    let mut first_seen = BTreeMap::new();
    let mut engine = machine.engine();
    let mut session = Session::new(&mut engine, peer(), None, flags & 1 == 1);
    let batch = if flags & 2 != 0 { 8 } else { 1 };
    for group in reqs.chunks(batch) {
        for req in group {
            let key = (req.cpu, req.device, req.reg);
            if let (false, Some(seen)) = (model.contains_key(&key), machine.probe(key)) {
                model.insert(key, seen);
                first_seen.insert(key, seen.value);
            }
        }
        let replies = if batch == 1 { vec![session.answer(&group[0])] } else { session.answer_batch(group) };
        for (req, reply) in group.iter().zip(&replies) {
            settle(&mut model, req, reply);
        }
        // The registers just used after each step; every register seen, before the end.
        for req in group {
            let key = (req.cpu, req.device, req.reg);
            if let Some(seen) = model.get(&key) {
                assert_eq!(machine.value(key), Some(seen.value), "register {key:x?} after {group:x?}");
            }
        }
    }
    for (&key, seen) in &model {
        assert_eq!(machine.value(key), Some(seen.value), "register {key:x?} after the session's requests");
    }
    let exit = flags & 4 != 0;
    let restored = session.finish(if exit { &Ended::Exit } else { &Ended::Eof });
    for (key, seen) in model {
        let persists = key.1 == wire::MSR_DEV && crate::policy::persists(key.2);
        let want = if exit || persists { seen.value } else { first_seen[&key] };
        assert_eq!(machine.value(key), Some(want), "{key:x?} at the end (exit {exit})");
    }
    if exit {
        assert_eq!(restored, 0, "EXIT keeps what the client programmed");
    }
}
