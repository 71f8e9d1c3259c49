//! The one request path: lock, bounds, policy, device. The daemon and the library's direct
//! mode both execute every access here, so each rule is enforced in exactly one place.

use crate::device::{MsrDevices, RegisterDevice};
use crate::error::{AccessError, StartError};
use crate::lock::LockWatch;
use crate::policy::{apply_mask, parse_cpuinfo, CpuModel, Policy, WriteRule};
use crate::root::Root;
use crate::site;
use crate::wire::MSR_DEV;

/// One access, already decoded from the wire or the C call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write(u64),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub old: Option<u64>,
    pub stored: u64,
}

pub struct Engine {
    policy: Policy,
    msrs: MsrDevices,
    lock: LockWatch,
}

/// The built-in policy for the machine under `root`, from its `/proc/cpuinfo`.
fn builtin_policy(root: &Root) -> Result<Policy, StartError> {
    let path = root.cpuinfo();
    let unsupported = |why: String| StartError::new(libc::ENOTSUP, why);
    let text =
        std::fs::read_to_string(&path).map_err(|e| unsupported(format!("cannot read {}: {e}", path.display())))?;
    let id = parse_cpuinfo(&text)
        .ok_or_else(|| unsupported(format!("{} names no vendor, family and model", path.display())))?;
    let model = CpuModel::for_identity(&id).ok_or_else(|| {
        unsupported(format!("unsupported CPU ({id}): no register policy for it, so all access is refused"))
    })?;
    Ok(Policy::builtin(model))
}

/// The effective policy under `root`: the site allowlist if the administrator installed one,
/// else the built-in table for this CPU; the site's read-only switch on top.
pub fn policy_for(root: &Root) -> Result<Policy, StartError> {
    let site = site::load(root)?;
    let policy = match &site.allowlist {
        Some((path, text)) => Policy::new(format!("site allowlist {}", path.display()), text)
            .map_err(|e| StartError::new(libc::EINVAL, format!("site allowlist {}: {e}", path.display())))?,
        None => builtin_policy(root)?,
    };
    Ok(if site.read_only { policy.read_only() } else { policy })
}

/// Stores `value` under `rule`: a masked merge, an unchanged-only check, or a refusal.
fn store(dev: &dyn RegisterDevice, rule: WriteRule, reg: u32, value: u64) -> Result<Written, AccessError> {
    let denied = AccessError::Denied { reg, write: true };
    match rule {
        WriteRule::Denied => Err(denied),
        WriteRule::Unchanged => match dev.read(reg).map_err(io_error)? {
            old if old == value => Ok(Written { old: Some(old), stored: old }),
            _ => Err(denied),
        },
        // All bits writable: no read first (write-1-to-clear status registers must not have
        // someone else's bits written back).
        WriteRule::Masked(u64::MAX) => {
            dev.write(reg, value).map_err(io_error)?;
            Ok(Written { old: None, stored: value })
        }
        WriteRule::Masked(mask) => {
            let old = dev.read(reg).map_err(io_error)?;
            let stored = apply_mask(old, value, mask);
            dev.write(reg, stored).map_err(io_error)?;
            Ok(Written { old: Some(old), stored })
        }
    }
}

impl Engine {
    /// Checks the lock, picks the policy and opens every CPU's device, in LIKWID's order.
    pub fn open(root: &Root, real_uid: u32) -> Result<Engine, StartError> {
        let mut lock = LockWatch::new(root.lock_file(), real_uid);
        if lock.locked() {
            return Err(StartError::new(
                libc::ENOLCK,
                format!(
                    "{} is held by another user: ask the owner or the batch system to release it",
                    lock.path().display()
                ),
            ));
        }
        let policy = policy_for(root)?;
        let msrs = MsrDevices::open_all(root)?;
        Ok(Engine { policy, msrs, lock })
    }

    pub fn cpus(&self) -> Vec<u32> {
        self.msrs.cpu_ids()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn device(&mut self, cpu: u32, device: i32) -> Result<&dyn RegisterDevice, AccessError> {
        if self.lock.locked() {
            return Err(AccessError::Locked);
        }
        self.unlocked_device(cpu, device)
    }

    fn unlocked_device(&self, cpu: u32, device: i32) -> Result<&dyn RegisterDevice, AccessError> {
        if device != MSR_DEV {
            return Err(AccessError::NoDevice);
        }
        Ok(self.msrs.get(cpu).ok_or(AccessError::NoDevice)?)
    }

    /// Whether `device` on `cpu` can be used.
    pub fn check(&mut self, cpu: u32, device: i32) -> Result<(), AccessError> {
        self.device(cpu, device).map(|_| ())
    }

    pub fn read(&mut self, cpu: u32, device: i32, reg: u32) -> Result<u64, AccessError> {
        let readable = self.policy.may_read(reg);
        let dev = self.device(cpu, device)?;
        if !readable {
            return Err(AccessError::Denied { reg, write: false });
        }
        dev.read(reg).map_err(io_error)
    }

    pub fn write(&mut self, cpu: u32, device: i32, reg: u32, value: u64) -> Result<Written, AccessError> {
        let rule = self.policy.write_rule(reg);
        let dev = self.device(cpu, device)?;
        store(dev, rule, reg, value)
    }

    /// Puts back a value a session overwrote. Ignores the lock (the registers go back to what
    /// they were before the session, whoever holds the lock now) but not the write masks.
    pub fn restore(&mut self, cpu: u32, device: i32, reg: u32, value: u64) -> Result<(), AccessError> {
        let rule = self.policy.write_rule(reg);
        let dev = self.unlocked_device(cpu, device)?;
        store(dev, rule, reg, value).map(|_| ())
    }

    pub fn execute(&mut self, cpu: u32, device: i32, reg: u32, op: Op) -> Result<u64, AccessError> {
        match op {
            Op::Read => self.read(cpu, device, reg),
            Op::Write(value) => self.write(cpu, device, reg, value).map(|_| 0),
        }
    }
}

fn io_error(e: std::io::Error) -> AccessError {
    AccessError::ReadWrite(e.raw_os_error().unwrap_or(libc::EIO))
}
