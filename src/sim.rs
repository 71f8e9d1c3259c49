//! Simulated machines: a directory tree that `LIKWID_ACCESS_ROOT` can point at, with a
//! `proc/cpuinfo` naming the CPU and one sparse register-store file per CPU.

use crate::policy::CpuModel;
use crate::root::Root;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// 8 bytes for each of the 2^32 register addresses: every MSR fits, and sparse files cost
/// nothing until written.
pub const REGISTER_STORE_LEN: u64 = 8 << 32;

/// The `/proc/cpuinfo` text of a simulated machine.
pub fn cpuinfo(model: &CpuModel, cpus: &[u32]) -> String {
    let id = model.identity();
    let mut text = String::new();
    for (core, cpu) in cpus.iter().enumerate() {
        let _ = write!(
            text,
            "processor\t: {cpu}\nvendor_id\t: {}\ncpu family\t: {}\nmodel\t\t: {}\n\
             model name\t: {} (simulated by likwid-access)\nstepping\t: 1\nphysical id\t: 0\n\
             core id\t\t: {core}\ncpu cores\t: {}\n\n",
            model.vendor.vendor_id(),
            id.family,
            id.model,
            model.description,
            cpus.len(),
        );
    }
    text
}

/// Creates (or refreshes) a simulated machine under `dir`.
pub fn create(dir: &Path, model: &CpuModel, cpus: &[u32]) -> io::Result<()> {
    let root = Root::new(dir);
    std::fs::create_dir_all(dir.join("proc"))?;
    std::fs::create_dir_all(dir.join("var/run"))?;
    std::fs::write(root.cpuinfo(), cpuinfo(model, cpus))?;
    for &cpu in cpus {
        let path = root.msr(cpu);
        std::fs::create_dir_all(path.parent().unwrap())?;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        file.set_len(REGISTER_STORE_LEN)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    #[test]
    fn simulated_cpuinfo_selects_the_named_table() {
        for model in crate::policy::CPU_MODELS {
            let text = cpuinfo(model, &[0, 1]);
            let id = crate::policy::parse_cpuinfo(&text).unwrap();
            assert_eq!(CpuModel::for_identity(&id).unwrap().name, model.name);
        }
    }

    #[test]
    fn a_simulated_machine_serves_the_engine() {
        let dir = std::env::temp_dir().join(format!("likwid-sim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create(&dir, CpuModel::by_name("zen4").unwrap(), &[0, 2, 5]).unwrap();
        let mut engine = Engine::open(&Root::new(&dir), nix::unistd::getuid().as_raw()).unwrap();
        assert_eq!(engine.cpus(), vec![0, 2, 5]);
        engine.write(2, 0, 0xC001_0201, 0xABCD).unwrap();
        assert_eq!(engine.read(2, 0, 0xC001_0201).unwrap(), 0xABCD);
        assert_eq!(engine.read(0, 0, 0xC001_0201).unwrap(), 0);
        assert_eq!(engine.read(1, 0, 0xC001_0201), Err(crate::error::AccessError::NoDevice));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
