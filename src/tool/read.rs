//! `likwid-access read`: one register on one or more CPUs through the daemon, like msr-tools'
//! rdmsr, under the daemon's policy.

use super::{access_failure, cpu_option, parse_args, parse_register, selected_cpus, start_session, Failure};
use crate::engine::Op;
use crate::wire::{DeviceIndex, HwThread};

pub const HELP: &str = "usage: likwid-access read REG [--cpu LIST] [--hex|--dec] [--bits HI:LO]\n\
\n\
Reads model-specific register REG (0x hex or decimal) on each CPU through likwid-accessD,\n\
under its register policy, and prints one line per CPU: `cpu N: VALUE`.\n\
\n\
  --cpu LIST    the CPUs, e.g. 0 or 0,2-5 (default: every CPU of the machine)\n\
  --hex         0x-prefixed hex, zero-padded to the field width (default)\n\
  --dec         decimal\n\
  --bits HI:LO  only bits HI down to LO, shifted down (e.g. --bits 47:0)\n\
\n\
Exit status: 0, 1 when an access fails (one line says why), 2 for a usage error.";

/// Which bits to print, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Format {
    hi: u32,
    lo: u32,
    decimal: bool,
}

impl Format {
    fn render(&self, value: u64) -> String {
        let width = self.hi - self.lo + 1;
        let mask = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
        let field = (value >> self.lo) & mask;
        if self.decimal {
            field.to_string()
        } else {
            format!("0x{field:0digits$x}", digits = width.div_ceil(4) as usize)
        }
    }
}

fn parse_bits(text: &str) -> Result<(u32, u32), Failure> {
    let bad = || Failure::Usage(format!("--bits `{text}`: want HI:LO with 63 >= HI >= LO >= 0"));
    let (hi, lo) = text.split_once(':').ok_or_else(bad)?;
    let (hi, lo) = (hi.parse::<u32>().map_err(|_| bad())?, lo.parse::<u32>().map_err(|_| bad())?);
    if hi > 63 || lo > hi {
        return Err(bad());
    }
    Ok((hi, lo))
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let p = parse_args(args, &["--cpu", "--bits"], &["--hex", "--dec"], 1)?;
    let reg = parse_register(p.positional.first().ok_or_else(|| Failure::Usage("read needs a register".into()))?)?;
    if p.has("--hex") && p.has("--dec") {
        return Err(Failure::Usage("--hex and --dec exclude each other".into()));
    }
    let (hi, lo) = p.value("--bits").map_or(Ok((63, 0)), parse_bits)?;
    let format = Format { hi, lo, decimal: p.has("--dec") };
    let cpus = cpu_option(&p)?;
    let mut session = start_session()?;
    let result = (|| {
        for cpu in selected_cpus(&session, cpus.as_deref())? {
            let value = session
                .access(HwThread(cpu), DeviceIndex::MSR, reg, Op::Read)
                .map_err(|e| access_failure(&format!("read {reg:#x} on cpu {cpu}"), e))?;
            println!("cpu {cpu}: {}", format.render(value));
        }
        Ok(())
    })();
    session.close();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_shifted_masked_and_padded() {
        let full = Format { hi: 63, lo: 0, decimal: false };
        assert_eq!(full.render(0xABC), "0x0000000000000abc");
        let byte1 = Format { hi: 15, lo: 8, decimal: false };
        assert_eq!(byte1.render(0x1234_5678), "0x56");
        let bit30 = Format { hi: 30, lo: 30, decimal: true };
        assert_eq!(bit30.render(0x4000_0000), "1");
        assert_eq!(Format { hi: 47, lo: 0, decimal: false }.render(u64::MAX), "0xffffffffffff");
    }

    #[test]
    fn bit_ranges_are_checked() {
        assert_eq!(parse_bits("47:0").unwrap(), (47, 0));
        for bad in ["64:0", "3:4", "3", "a:b"] {
            assert!(parse_bits(bad).is_err(), "{bad}");
        }
    }
}
