//! `likwid-access sim`: creates simulated machines for `LIKWID_ACCESS_ROOT`.

use super::Failure;
use crate::policy::{CpuModel, CPU_MODELS};
use std::path::PathBuf;

pub const HELP: &str = "usage: likwid-access sim DIR --cpu NAME (--cpus N | --cpu-list ID,ID,...) [--sockets N]\n\
\n\
Creates a simulated machine under DIR for LIKWID_ACCESS_ROOT=DIR: DIR/proc/cpuinfo naming\n\
the CPU and sparse register-store files DIR/dev/cpu/ID/msr (register R at byte offset 8*R);\n\
for Intel servers (skx, icx) also each socket's uncore PCI devices under\n\
DIR/sys/bus/pci/devices (config files, vendor, device, numa_node); for spr, emr and gnr each\n\
socket's uncore discovery device (PCI extended capability 0x23), its table and the MMIO units\n\
in a sparse DIR/dev/mem, and the PCI units as sysfs devices.\n\
\n\
  --cpu NAME         the CPU generation, e.g. zen4 or icx (an unknown NAME lists them all)\n\
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

fn parse_sim(args: &[String]) -> Result<SimArgs, String> {
    let mut dir = None;
    let mut model = None;
    let mut cpus = None;
    let mut sockets = 1;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--cpu" => {
                let name = value("--cpu")?;
                model = Some(CpuModel::by_name(&name).ok_or(format!("unknown CPU `{name}` (known: {})", cpu_names()))?);
            }
            "--cpus" => {
                let n = value("--cpus")?;
                let n: u32 = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=65_536).contains(n))
                    .ok_or(format!("--cpus `{n}`: want a count from 1 to 65536"))?;
                cpus = Some((0..n).collect::<Vec<_>>());
            }
            "--sockets" => {
                let n = value("--sockets")?;
                sockets =
                    n.parse().ok().filter(|n| (1..=64).contains(n)).ok_or(format!("--sockets `{n}`: want 1 to 64"))?;
            }
            "--cpu-list" => {
                let list = value("--cpu-list")?;
                let mut ids = list
                    .split(',')
                    .map(|s| s.trim().parse::<u32>().map_err(|_| format!("--cpu-list: `{s}` is not a cpu id")))
                    .collect::<Result<Vec<_>, _>>()?;
                ids.sort_unstable();
                ids.dedup();
                cpus = Some(ids);
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            path if dir.is_none() => dir = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument `{extra}`")),
        }
    }
    Ok(SimArgs {
        dir: dir.ok_or("sim needs a directory")?,
        model: model.ok_or(format!("sim needs --cpu NAME (known: {})", cpu_names()))?,
        cpus: cpus.ok_or("sim needs --cpus N or --cpu-list ID,...")?,
        sockets,
    })
    .and_then(|a| {
        if (a.cpus.len() as u32) < a.sockets {
            return Err(format!("{} CPUs cannot fill {} sockets", a.cpus.len(), a.sockets));
        }
        Ok(a)
    })
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    let a = parse_sim(args).map_err(Failure::Usage)?;
    crate::sim::create_sockets(&a.dir, a.model, &a.cpus, a.sockets)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", a.dir.display())))?;
    println!("simulated {} with {} CPUs at {}", a.model.description, a.cpus.len(), a.dir.display());
    Ok(())
}
