//! Where the device files, `/proc/cpuinfo` and the lock file are: `/`, or a simulated
//! machine's tree named by `LIKWID_ACCESS_ROOT` outside secure-exec.

use std::path::{Path, PathBuf};

/// Environment variable that re-roots every path (ignored under secure-exec).
pub const ROOT_ENV: &str = "LIKWID_ACCESS_ROOT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Root {
        Root { base: base.into() }
    }

    pub fn system() -> Root {
        Root::new("/")
    }

    /// The root this process should use. Under secure-exec the environment is the caller's
    /// and is ignored; the ignored attempt is logged.
    pub fn from_env(secure_exec: bool) -> Root {
        match std::env::var_os(ROOT_ENV) {
            Some(dir) if secure_exec => {
                log::warn!("ignoring {ROOT_ENV}={} under secure-exec", Path::new(&dir).display());
                Root::system()
            }
            Some(dir) if !dir.is_empty() => Root::new(dir),
            _ => Root::system(),
        }
    }

    pub fn is_system(&self) -> bool {
        self.base == Path::new("/")
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.base.join(rel)
    }

    pub fn msr_dir(&self) -> PathBuf {
        self.join("dev/cpu")
    }

    pub fn msr(&self, cpu: u32) -> PathBuf {
        self.msr_dir().join(cpu.to_string()).join("msr")
    }

    pub fn cpuinfo(&self) -> PathBuf {
        self.join("proc/cpuinfo")
    }

    pub fn pci_devices(&self) -> PathBuf {
        self.join("sys/bus/pci/devices")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.join("var/run/likwid.lock")
    }
}
