//! `likwid-access sim`: creates simulated machines for `LIKWID_ACCESS_ROOT`.

use super::{parse_args, parse_cpu_list, Failure};
use crate::policy::{CpuModel, CPU_MODELS};
use std::path::PathBuf;

pub const HELP: &str = "usage: likwid-access sim DIR --model NAME (--cpus N | --cpu-list ID,ID,...) [--sockets N]\n\
\n\
Creates a simulated machine under DIR for LIKWID_ACCESS_ROOT=DIR: DIR/proc/cpuinfo naming\n\
the CPU and sparse register-store files DIR/dev/cpu/ID/msr (register R at byte offset 8*R);\n\
for Intel servers (skx, icx) also each socket's uncore PCI devices under\n\
DIR/sys/bus/pci/devices (config files, vendor, device, numa_node); for spr, emr and gnr each\n\
socket's uncore discovery device (PCI extended capability 0x23), its table and the MMIO units\n\
in a sparse DIR/dev/mem, and the PCI units as sysfs devices.\n\
\n\
  --model NAME       the CPU generation, e.g. zen4 or icx (an unknown NAME lists them all);\n\
                     `--cpu NAME` is the older spelling, still taken here (elsewhere --cpu\n\
                     is a CPU list)\n\
  --cpus N           CPUs 0 to N-1\n\
  --cpu-list ID,...  these CPU ids (for non-consecutive ids)\n\
  --sockets N        spread the CPUs over N sockets (default 1)";

struct SimArgs {
    dir: PathBuf,
    model: &'static CpuModel,
    cpus: Vec<u32>,
    sockets: u32,
}

fn cpu_names() -> String {
    CPU_MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

fn parse_sim(args: &[String]) -> Result<SimArgs, Failure> {
    let usage = |why: String| Failure::Usage(why);
    let p = parse_args(args, &["--model", "--cpu", "--cpus", "--cpu-list", "--sockets"], &[], 1)?;
    let dir = p.positional.first().map(PathBuf::from).ok_or_else(|| usage("sim needs a directory".into()))?;
    let name = p
        .value("--model")
        .or(p.value("--cpu"))
        .ok_or_else(|| usage(format!("sim needs --model NAME (known: {})", cpu_names())))?;
    let model =
        CpuModel::by_name(name).ok_or_else(|| usage(format!("unknown CPU `{name}` (known: {})", cpu_names())))?;
    let cpus = match (p.value("--cpus"), p.value("--cpu-list")) {
        (Some(n), _) => {
            let n: u32 = n
                .parse()
                .ok()
                .filter(|n| (1..=65_536).contains(n))
                .ok_or_else(|| usage(format!("--cpus `{n}`: want a count from 1 to 65536")))?;
            (0..n).collect()
        }
        (None, Some(list)) => parse_cpu_list(list)?,
        (None, None) => return Err(usage("sim needs --cpus N or --cpu-list ID,...".into())),
    };
    let sockets = match p.value("--sockets") {
        None => 1,
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| usage(format!("--sockets `{n}`: want 1 to 64")))?,
    };
    if (cpus.len() as u32) < sockets {
        return Err(usage(format!("{} CPUs cannot fill {sockets} sockets", cpus.len())));
    }
    Ok(SimArgs { dir, model, cpus, sockets })
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let a = parse_sim(args)?;
    crate::sim::create_sockets(&a.dir, a.model, &a.cpus, a.sockets)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", a.dir.display())))?;
    println!("simulated {} with {} CPUs at {}", a.model.description, a.cpus.len(), a.dir.display());
    Ok(())
}
