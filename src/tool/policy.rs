//! `likwid-access policy`: the effective allowlist for this machine (or the simulated one
//! under `LIKWID_ACCESS_ROOT`) in msr-safe's text format, masks after the never-writable
//! ceiling, so what it prints is what the daemon enforces.

use super::{parse_args, Failure};
use crate::engine::policy_for;
use crate::policy::{self, discovery, parse_cpuinfo, Policy, WriteRule, CEILING_TABLE};
use crate::root::Root;

pub const HELP: &str = "usage: likwid-access policy\n\
\n\
Prints the register allowlist likwid-accessD enforces on this machine (LIKWID_ACCESS_ROOT:\n\
the simulated one), in msr-safe's format: `0xADDR[-0xLAST] 0xWRITEMASK  # access`. Every\n\
listed register is readable in full; a write stores (new & mask) | (old & ~mask); mask 0\n\
means read-only; anything unlisted is denied. The masks are the effective ones, after the\n\
never-writable ceiling. The first line names where the table came from.\n\
\n\
Exit status: 0, 1 when there is no policy for this machine, 2 for a usage error.";

pub fn run(args: &[String]) -> Result<(), Failure> {
    parse_args(args, &[], &[], 0)?;
    let root = Root::from_env(crate::sys::secure_exec());
    let policy = policy_for(&root).map_err(|e| Failure::Failed(e.message))?;
    let cpu = std::fs::read_to_string(root.cpuinfo())
        .ok()
        .and_then(|text| parse_cpuinfo(&text))
        .map_or_else(|| "unknown CPU".to_string(), |id| id.to_string());
    println!("# likwid-access policy: {}", policy.source);
    print!("# CPU: {cpu} ({})\n{}", root.cpuinfo().display(), to_text(&policy));
    let model = std::fs::read_to_string(root.cpuinfo())
        .ok()
        .and_then(|text| parse_cpuinfo(&text))
        .and_then(|id| crate::policy::CpuModel::for_identity(&id));
    if model.is_some_and(|m| discovery::UnitMap::for_model(m.name).is_some()) {
        // Comments, so the output still parses as an MSR allowlist.
        println!("# Uncore discovery units (device = unit index, reg = FAKE_UNC_*), REGISTER READ WRITEMASK:");
        for rule in discovery::ALLOW_TABLE.lines().map(|l| l.split('#').next().unwrap_or("").trim()) {
            if !rule.is_empty() {
                println!("#   {rule}");
            }
        }
    }
    Ok(())
}

/// Registers where the ceiling's decision changes: a table range is split there, so each
/// printed line has one effective mask.
fn ceiling_bounds() -> Vec<u32> {
    let ceiling = policy::parse(CEILING_TABLE).expect("built-in ceiling table parses");
    let mut bounds: Vec<u32> = ceiling.iter().flat_map(|r| [Some(r.first), r.last.checked_add(1)]).flatten().collect();
    bounds.sort_unstable();
    bounds
}

/// The policy as msr-safe text: one line per range with one effective write rule.
pub fn to_text(policy: &Policy) -> String {
    let bounds = ceiling_bounds();
    let mut text = String::from(
        "# Every listed register is readable in full. Write mask: the bits a write may change\n\
         # ((new & mask) | (old & ~mask)), after the never-writable ceiling; 0 = read-only.\n\
         # Anything unlisted is denied for read and write.\n",
    );
    for rule in policy.rules() {
        let mut first = rule.first;
        loop {
            let next = bounds.iter().copied().find(|&b| b > first && b <= rule.last);
            let last = next.map_or(rule.last, |b| b - 1);
            text.push_str(&line(first, last, rule.write_mask, policy.write_rule(first)));
            match next {
                Some(b) => first = b,
                None => break,
            }
        }
    }
    text
}

fn line(first: u32, last: u32, table_mask: u64, rule: WriteRule) -> String {
    let addr = if first == last { format!("{first:#010X}") } else { format!("{first:#010X}-{last:#010X}") };
    let (mask, access) = match rule {
        WriteRule::Masked(m) if m == u64::MAX => (m, "read, write".to_string()),
        WriteRule::Masked(m) if m == table_mask => (m, "read, write masked".to_string()),
        WriteRule::Masked(m) => (m, format!("read, write masked (ceiling; table says {table_mask:#x})")),
        WriteRule::Unchanged => (0, "read-only".to_string()),
        WriteRule::Denied => (0, "read-only, never written".to_string()),
    };
    format!("{addr:<23} 0x{mask:016X}  # {access}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CPU_MODELS;

    /// What `policy` prints parses back into rules that decide every listed register as the
    /// policy itself does.
    #[test]
    fn printed_policy_parses_back_to_the_same_decisions() {
        for model in CPU_MODELS {
            let policy = Policy::builtin(model);
            let text = to_text(&policy);
            let printed = Policy::new("printed", &text).unwrap_or_else(|e| panic!("{}: {e}", model.name));
            for rule in policy.rules() {
                for reg in [rule.first, rule.last, rule.first + (rule.last - rule.first) / 2] {
                    assert!(printed.may_read(reg), "{} {reg:#x}", model.name);
                    assert_eq!(printed.write_mask(reg), policy.write_mask(reg), "{} {reg:#x}", model.name);
                }
            }
        }
    }

    #[test]
    fn zen4_hwcr_is_capped_to_irperfen() {
        let text = to_text(&Policy::builtin(crate::policy::CpuModel::by_name("zen4").unwrap()));
        let hwcr = text.lines().find(|l| l.starts_with("0xC0010015 ")).expect("HWCR listed");
        assert!(hwcr.contains("0x0000000040000000"), "{hwcr}");
        if let Some(syscfg) = text.lines().find(|l| l.starts_with("0xC0010010")) {
            assert!(syscfg.contains("0x0000000000000000"), "{syscfg}");
        }
    }
}
