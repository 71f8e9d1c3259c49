//! `likwid-access check`: whether the daemon can use each CPU's registers (LIKWID's CHECK).

use super::{
    access_failure, cpu_option, format_cpu_list, parse_args, selected_cpus, start_session, thread_numbers, Failure,
};
use crate::error::AccessError;
use crate::wire::{DeviceIndex, HwThread};

pub const HELP: &str = "usage: likwid-access check [--cpu LIST]\n\
\n\
Starts likwid-accessD and asks it, for each CPU, whether it can use that CPU's model-specific\n\
registers. Prints the daemon and its CPUs, then `cpu N: usable` or why not.\n\
\n\
  --cpu LIST    the CPUs, e.g. 0 or 0,2-5 (default: every CPU of the machine)\n\
\n\
Exit status: 0 when every CPU is usable, 1 otherwise, 2 for a usage error.";

pub fn run(args: &[String]) -> Result<(), Failure> {
    let p = parse_args(args, &["--cpu"], &[], 0)?;
    let cpus = cpu_option(&p)?;
    let mut session = start_session()?;
    let result = (|| {
        let cpus = selected_cpus(&session, cpus.as_deref())?;
        let path = crate::client::daemon_path(crate::sys::secure_exec());
        println!(
            "likwid-accessD {} (pid {}) serves CPUs {}",
            path.display(),
            session.pid(),
            format_cpu_list(&thread_numbers(&session))
        );
        let mut unusable = 0;
        for cpu in cpus {
            match session.check(HwThread(cpu), DeviceIndex::MSR) {
                Ok(()) => println!("cpu {cpu}: usable"),
                Err(e @ AccessError::Channel(_)) => return Err(access_failure(&format!("check cpu {cpu}"), e)),
                Err(e) => {
                    unusable += 1;
                    println!("cpu {cpu}: not usable: {e}");
                }
            }
        }
        match unusable {
            0 => Ok(()),
            n => Err(Failure::Failed(format!("{n} CPU(s) not usable"))),
        }
    })();
    session.close();
    result
}
