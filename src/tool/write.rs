//! `likwid-access write`: one register on one or more CPUs through the daemon, like msr-tools'
//! wrmsr, under the daemon's policy (write masks apply).

use super::{access_failure, cpu_option, parse_args, parse_register, parse_u64, selected_cpus, start_session, Failure};
use crate::engine::Op;
use crate::wire::{DeviceIndex, HwThread};

pub const HELP: &str = "usage: likwid-access write REG VALUE [--cpu LIST]\n\
\n\
Writes VALUE to model-specific register REG (both 0x hex or decimal) on each CPU through\n\
likwid-accessD, under its register policy: bits outside the register's write mask keep\n\
their value. Prints one line per CPU with what the register holds afterwards.\n\
\n\
  --cpu LIST    the CPUs, e.g. 0 or 0,2-5 (default: every CPU of the machine)\n\
\n\
Exit status: 0, 1 when an access fails (one line says why), 2 for a usage error.";

pub fn run(args: &[String]) -> Result<(), Failure> {
    let p = parse_args(args, &["--cpu"], &[], 2)?;
    let [reg, value] = &p.positional[..] else {
        return Err(Failure::Usage("write needs a register and a value".into()));
    };
    let (reg, value) = (parse_register(reg)?, parse_u64("value", value)?);
    let cpus = cpu_option(&p)?;
    let mut session = start_session()?;
    let result = (|| {
        for cpu in selected_cpus(&session, cpus.as_deref())? {
            let what = format!("write {value:#x} to {reg:#x} on cpu {cpu}");
            session
                .access(HwThread(cpu), DeviceIndex::MSR, reg, Op::Write(value))
                .map_err(|e| access_failure(&what, e))?;
            match session.access(HwThread(cpu), DeviceIndex::MSR, reg, Op::Read) {
                Ok(now) => println!("cpu {cpu}: {reg:#x} <- {value:#x}, now {now:#018x}"),
                Err(_) => println!("cpu {cpu}: {reg:#x} <- {value:#x}"),
            }
        }
        Ok(())
    })();
    session.close();
    result
}
