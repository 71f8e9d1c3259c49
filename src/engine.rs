//! The one request path: lock, bounds, policy, device. The daemon and the library's direct
//! mode both execute every access here, so each rule is enforced in exactly one place.

use crate::device::discovery::Discovery;
use crate::device::pci::{PciConfig, PciDevices};
use crate::device::{MsrDevices, RegisterDevice};
use crate::error::{AccessError, StartError};
use crate::lock::{Held, LockWatch};
use crate::policy::discovery::{self, FakeReg, RegisterRule, Space, Width};
use crate::policy::pci::{Generation, Numbering, PciRule};
use crate::policy::{apply_mask, CpuInfo, CpuModel, Decisions, Policy, WriteRule};
use crate::root::Root;
use crate::site;
use crate::wire::MSR_DEV;
use std::sync::Arc;

/// One access, already decoded from the wire or the C call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write(u64),
}

/// Everything opened while privileged: the policy, every CPU's register device and every
/// uncore device. The daemon opens it before it drops privileges, which is before it knows its
/// client (LIKWID's socket is accepted afterwards); `serve_as` then adds how that client
/// numbers PCI devices. Never changes once open, so engines on several threads share it (the
/// service: one engine per connection).
pub struct Machine {
    policy: Policy,
    msrs: MsrDevices,
    /// The opener's watch on the lock file; each engine gets its own copy (`serve_as`).
    lock: LockWatch,
    /// The uncore devices (Intel servers) and their generation.
    pci: PciDevices,
    generation: Option<&'static Generation>,
    /// (hardware thread, socket) of every CPU, from `/proc/cpuinfo`.
    sockets: Vec<(u32, u32)>,
    /// Uncore units found through Intel's discovery tables (Sapphire Rapids and later).
    discovery: Option<Discovery>,
}

/// A machine serving one client: its `PciDeviceIndex` numbering names the uncore devices.
pub struct Engine {
    machine: Arc<Machine>,
    /// LIKWID's lock file, judged for this engine's client.
    lock: LockWatch,
    numbering: Numbering,
    /// The policy's MSR decisions, remembered (the policy never changes).
    decisions: Decisions,
    /// PCI requests' device and rule, remembered by address (devices, numbering and rules are
    /// fixed once the engine exists; the name look-up, a `String` per request and the rules'
    /// linear scan cost about 600 of a batched PCI read's 880 instructions, callgrind).
    pci_slots: Box<[std::cell::Cell<PciSlot>; PCI_SLOTS]>,
}

const PCI_SLOTS: usize = 64;

/// One remembered PCI request address: (socket, device, register) -> device position, rule.
#[derive(Debug, Clone, Copy)]
struct PciSlot {
    key: Option<(u32, i32, u32)>,
    slot: usize,
    rule: Option<&'static PciRule<'static>>,
}

const NO_PCI_SLOT: PciSlot = PciSlot { key: None, slot: 0, rule: None };

/// A PCI config register of a fixed width, seen as a register device.
struct PciRegister<'a> {
    config: &'a PciConfig,
    width: u8,
}

impl RegisterDevice for PciRegister<'_> {
    fn read(&self, reg: u32) -> std::io::Result<u64> {
        self.config.read(reg, self.width)
    }

    fn write(&self, reg: u32, value: u64) -> std::io::Result<()> {
        self.config.write(reg, self.width, value)
    }
}

/// A PCI register rule as a write decision: mask 0 read-only, all bits of its width a plain write.
pub(crate) fn pci_write_rule(rule: &PciRule) -> WriteRule {
    let all = if rule.width == 8 { u64::MAX } else { u64::from(u32::MAX) };
    match rule.write_mask {
        0 => WriteRule::Unchanged,
        m if m == all => WriteRule::Masked(u64::MAX),
        m => WriteRule::Masked(m),
    }
}

/// `/proc/cpuinfo` under `root`, read once and parsed once (the CPU model, the sockets).
fn read_cpuinfo(root: &Root) -> Result<CpuInfo, StartError> {
    let path = root.cpuinfo();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| StartError::new(libc::ENOTSUP, format!("cannot read {}: {e}", path.display())))?;
    Ok(CpuInfo::parse(&text))
}

/// The CPU model `info` names, or why there is no built-in table for it.
fn cpu_model(root: &Root, info: &CpuInfo) -> Result<&'static CpuModel, StartError> {
    let unsupported = |why: String| StartError::new(libc::ENOTSUP, why);
    let id = info
        .identity
        .ok_or_else(|| unsupported(format!("{} names no vendor, family and model", root.cpuinfo().display())))?;
    CpuModel::for_identity(&id).ok_or_else(|| {
        unsupported(format!("unsupported CPU ({id}): no register policy for it, so all access is refused"))
    })
}

/// The effective policy under `root`: the site allowlist if the administrator installed one,
/// else `builtin` (this CPU's table, or why it has none); the site's read-only switch on top.
fn effective_policy(root: &Root, builtin: Result<&Policy, &StartError>) -> Result<Policy, StartError> {
    let site = site::load(root)?;
    let policy = match &site.allowlist {
        Some((path, text)) => Policy::new(format!("site allowlist {}", path.display()), text)
            .map_err(|e| StartError::new(libc::EINVAL, format!("site allowlist {}: {e}", path.display())))?,
        None => builtin.map_err(Clone::clone)?.clone(),
    };
    Ok(if site.read_only { policy.read_only() } else { policy })
}

/// The effective policy under `root` (for the tools; the daemon gets it from `Machine::open`).
pub fn policy_for(root: &Root) -> Result<Policy, StartError> {
    let builtin = read_cpuinfo(root).and_then(|info| cpu_model(root, &info)).map(Policy::builtin);
    effective_policy(root, builtin.as_ref())
}

/// Stores `value` at `reg` of `dev` under `rule`: a masked merge, an unchanged-only check, or
/// a refusal (reported for `asked`, the register the client named).
fn store<D: RegisterDevice + ?Sized>(
    dev: &D,
    rule: WriteRule,
    reg: u32,
    asked: u32,
    value: u64,
) -> Result<(), AccessError> {
    let denied = AccessError::Denied { reg: asked, write: true };
    match rule {
        WriteRule::Denied => Err(denied),
        WriteRule::Unchanged => match dev.read(reg).map_err(io_error)? {
            old if old == value => Ok(()),
            _ => Err(denied),
        },
        // All bits writable: no read first (write-1-to-clear status registers must not have
        // someone else's bits written back).
        WriteRule::Masked(u64::MAX) => dev.write(reg, value).map_err(io_error),
        WriteRule::Masked(mask) => {
            let old = dev.read(reg).map_err(io_error)?;
            dev.write(reg, apply_mask(old, value, mask)).map_err(io_error)
        }
    }
}

/// A resolved register: the device that holds it, its address there, and what the policy
/// allows on it.
struct Target<'a> {
    device: Device<'a>,
    addr: u32,
    readable: bool,
    write: WriteRule,
}

enum Device<'a> {
    Msr(&'a crate::device::MsrFile),
    Pci(PciRegister<'a>),
    /// 64 bits as two 32-bit accesses, low half first.
    Split(&'a PciConfig),
    /// A register the policy refuses: never touched (read and write are denied before).
    Refused,
}

impl RegisterDevice for Device<'_> {
    // Inlined into the request path (callgrind: ~35 instructions per read when it is not).
    #[inline]
    fn read(&self, reg: u32) -> std::io::Result<u64> {
        match self {
            Device::Msr(file) => file.read(reg),
            Device::Pci(register) => register.read(reg),
            Device::Split(config) => Ok(config.read(reg, 4)? | config.read(reg + 4, 4)? << 32),
            Device::Refused => Err(std::io::Error::from_raw_os_error(libc::EPERM)),
        }
    }

    fn write(&self, reg: u32, value: u64) -> std::io::Result<()> {
        match self {
            Device::Msr(file) => file.write(reg, value),
            Device::Pci(register) => register.write(reg, value),
            Device::Split(config) => {
                config.write(reg, 4, value & 0xFFFF_FFFF)?;
                config.write(reg + 4, 4, value >> 32)
            }
            Device::Refused => Err(std::io::Error::from_raw_os_error(libc::EPERM)),
        }
    }
}

/// A discovery register rule as a write decision.
fn discovery_write_rule(rule: Option<RegisterRule>) -> WriteRule {
    match rule.and_then(|r| r.write_mask) {
        None => WriteRule::Denied,
        Some(0) => WriteRule::Unchanged,
        Some(mask) => WriteRule::Masked(mask),
    }
}

impl Machine {
    /// Checks the lock, picks the policy and opens every CPU's device and every uncore
    /// device, in LIKWID's order.
    pub fn open(root: &Root, real_uid: u32) -> Result<Machine, StartError> {
        let path = root.lock_file();
        match crate::lock::holder(&path, real_uid) {
            None => {}
            Some(Held::ByOwner(uid)) => {
                return Err(StartError::new(
                    libc::ENOLCK,
                    format!("{} is held by uid {uid}: ask the owner or the batch system to release it", path.display()),
                ))
            }
            Some(Held::Unknown(e)) => {
                return Err(StartError::new(
                    libc::ENOLCK,
                    format!("cannot check the lock file {} ({e}), so access stays locked", path.display()),
                ))
            }
        }
        let lock = LockWatch::new(path, real_uid);
        // cpuinfo is read and parsed once, and the built-in table parsed once: it is the policy
        // without a site allowlist, and the registers discovered units must keep out of with one.
        let info = read_cpuinfo(root)?;
        let model = cpu_model(root, &info);
        let builtin = model.clone().map(Policy::builtin);
        let policy = effective_policy(root, builtin.as_ref())?;
        let msrs = MsrDevices::open_all(root)?;
        // Only under a site allowlist can a CPU without a built-in table get here: its MSRs are
        // served by the site's table, and it has no uncore devices we know.
        let model = model.map_err(|e| log::info!("no uncore devices served: {}", e.message)).ok();
        let generation = model.and_then(|m| Generation::for_model(m.name));
        let pci = PciDevices::open_all(root, generation);
        let sockets = info.sockets_of(&msrs.cpu_ids());
        // Units must not contain registers the CPU's table or the ceiling speak about: a
        // discovered unit is served under its own masks, never as a way around the MSR table.
        let builtin = builtin.ok();
        let forbidden = |reg: u32| policy.lists(reg) || builtin.as_ref().is_some_and(|p| p.lists(reg));
        let discovery = model.and_then(|m| Discovery::open(root, m.name, &sockets, &forbidden));
        Ok(Machine { policy, msrs, lock, pci, generation, sockets, discovery })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn cpu_count(&self) -> usize {
        self.msrs.cpu_ids().len()
    }

    /// The engine for a client that numbers PCI devices as `numbering`.
    pub fn serve_as(self, numbering: Numbering) -> Engine {
        let lock = self.lock.clone();
        Engine::on(Arc::new(self), lock, numbering)
    }
}

impl Engine {
    fn on(machine: Arc<Machine>, lock: LockWatch, numbering: Numbering) -> Engine {
        Engine {
            machine,
            lock,
            numbering,
            decisions: Decisions::default(),
            pci_slots: Box::new([const { std::cell::Cell::new(NO_PCI_SLOT) }; PCI_SLOTS]),
        }
    }

    /// `Machine::open` for a client whose numbering is known up front (our library, tests).
    pub fn open(root: &Root, real_uid: u32, numbering: Numbering) -> Result<Engine, StartError> {
        Machine::open(root, real_uid).map(|m| m.serve_as(numbering))
    }

    /// (hardware thread, socket) of every CPU served.
    pub fn sockets(&self) -> &[(u32, u32)] {
        &self.machine.sockets
    }

    /// The uncore devices served, as (socket, PciDeviceIndex name).
    pub fn pci_devices(&self) -> impl Iterator<Item = (u32, &str)> {
        self.machine.pci.list()
    }

    /// Discovered uncore units per socket (empty without discovery tables).
    pub fn discovered_units(&self) -> Vec<(u32, usize)> {
        self.machine.discovery.iter().flat_map(|d| d.sockets.iter().map(|(s, u)| (*s, u.table.units.len()))).collect()
    }

    /// The first hardware thread of `socket`: where its MSR units are reached.
    fn first_cpu(&self, socket: u32) -> Option<&crate::device::MsrFile> {
        let cpu = self.machine.sockets.iter().filter(|(_, s)| *s == socket).map(|(c, _)| *c).min()?;
        self.machine.msrs.get(cpu)
    }

    /// Register `reg` (a FAKE_UNC_* value) of discovered unit `device` on `socket`. NODEV for a
    /// unit this socket's table does not have; a refused target for any register the unit does
    /// not have or the allow table does not list.
    fn discovery_target<'a>(
        &'a self,
        d: &'a Discovery,
        socket: u32,
        device: i32,
        reg: u32,
    ) -> Result<Target<'a>, AccessError> {
        let refused = Target { device: Device::Refused, addr: reg, readable: false, write: WriteRule::Denied };
        let units = d.sockets.get(&socket).ok_or(AccessError::NoDevice)?;
        // LIKWID 5.2 knows no CPU with discovery tables: whoever addresses their units speaks
        // 5.3.0's or 5.4+'s numbering, and 5.4+ when nothing better says which.
        let numbering = match self.numbering {
            Numbering::Likwid52 => Numbering::Likwid54,
            n => n,
        };
        let fake = FakeReg::decode(reg, numbering);
        let is_global = matches!(fake, Some(FakeReg::GlobalCtrl | FakeReg::GlobalStatus(_)));
        if is_global && numbering.name(device) == Some(discovery::GLOBAL_DEVICE) {
            let Some(msr) = fake.and_then(|f| discovery::locate_global(&units.table.global, f)) else {
                return Ok(refused);
            };
            let rule = fake.and_then(RegisterRule::of);
            let file = self.first_cpu(socket).ok_or(AccessError::NoDevice)?;
            return Ok(Target {
                device: Device::Msr(file),
                addr: msr,
                readable: rule.is_some_and(|r| r.readable),
                write: discovery_write_rule(rule),
            });
        }
        let (kind, id) = d.map.unit_of(numbering, device).ok_or(AccessError::NoDevice)?;
        let unit = units.table.units.get(&(kind.box_type, id)).ok_or(AccessError::NoDevice)?;
        let Some(fake) = fake else { return Ok(refused) };
        let (Some(location), Some(rule)) = (discovery::locate(unit, kind.layout, fake), RegisterRule::of(fake)) else {
            return Ok(refused);
        };
        let device = match location.space {
            Space::Msr => Device::Msr(self.first_cpu(socket).ok_or(AccessError::NoDevice)?),
            space => {
                let (config, offset) = d.window(socket, space, location.address).ok_or(AccessError::OpenFailed)?;
                let target = match location.width {
                    Width::Split => Device::Split(config),
                    width => Device::Pci(PciRegister { config, width: width.bytes() }),
                };
                return Ok(Target {
                    device: target,
                    addr: offset,
                    readable: rule.readable,
                    write: discovery_write_rule(Some(rule)),
                });
            }
        };
        Ok(Target {
            device,
            addr: location.address as u32,
            readable: rule.readable,
            write: discovery_write_rule(Some(rule)),
        })
    }

    /// An engine for `cpu` alone, sharing this one's open device and policy: what a worker
    /// thread pinned to that CPU executes with.
    pub fn for_cpu(&self, cpu: u32) -> std::io::Result<Engine> {
        let m = &self.machine;
        let machine = Machine {
            policy: m.policy.clone(),
            msrs: m.msrs.only(cpu)?,
            lock: self.lock.clone(),
            pci: PciDevices::default(),
            generation: None,
            sockets: Vec::new(),
            discovery: None,
        };
        Ok(Engine::on(Arc::new(machine), self.lock.clone(), self.numbering))
    }

    /// True when a read on another CPU would cost an inter-processor interrupt (kernel msr
    /// driver), so pinned workers pay off.
    pub fn on_kernel_devices(&self) -> bool {
        self.machine.msrs.any_kernel_device()
    }

    pub fn cpus(&self) -> Vec<u32> {
        self.machine.msrs.cpu_ids()
    }

    pub fn policy(&self) -> &Policy {
        &self.machine.policy
    }

    #[inline(always)]
    fn unlocked(&mut self) -> Result<(), AccessError> {
        if self.lock.locked() {
            return Err(AccessError::Locked);
        }
        Ok(())
    }

    /// Register `reg` of `device` on `cpu` (a hardware thread for MSR_DEV, a socket for a
    /// PciDeviceIndex), with the rules for it. NODEV for anything this machine does not have.
    fn target(&self, cpu: u32, device: i32, reg: u32) -> Result<Target<'_>, AccessError> {
        if device == MSR_DEV {
            let (file, readable, write) = self.msr_target(cpu, reg)?;
            return Ok(Target { device: Device::Msr(file), addr: reg, readable, write });
        }
        if let Some(d) = &self.machine.discovery {
            return self.discovery_target(d, cpu, device, reg);
        }
        let (slot, rule) = self.pci_slot(cpu, device, reg)?;
        let (_, config) = self.machine.pci.at(slot);
        Ok(Target {
            device: Device::Pci(PciRegister { config, width: rule.map_or(4, |r| r.width) }),
            addr: reg,
            readable: rule.is_some(),
            write: rule.map_or(WriteRule::Denied, pci_write_rule),
        })
    }

    /// MSR `reg` of hardware thread `cpu`: its device and the rules for it (`target`'s MSR
    /// half, which `read` also takes directly).
    #[inline(always)]
    fn msr_target(&self, cpu: u32, reg: u32) -> Result<(&crate::device::MsrFile, bool, WriteRule), AccessError> {
        let file = self.machine.msrs.get(cpu).ok_or(AccessError::NoDevice)?;
        let (readable, write) = self.decisions.of(&self.machine.policy, reg);
        Ok((file, readable, write))
    }

    /// The position of PCI `device` on socket `cpu` and the rule for `reg` of it; NODEV for a
    /// device this machine does not have (not remembered).
    fn pci_slot(
        &self,
        cpu: u32,
        device: i32,
        reg: u32,
    ) -> Result<(usize, Option<&'static PciRule<'static>>), AccessError> {
        let hash = cpu.wrapping_mul(31).wrapping_add(device as u32).wrapping_mul(31).wrapping_add(reg >> 2);
        let cell = &self.pci_slots[hash as usize % PCI_SLOTS];
        let remembered = cell.get();
        if remembered.key == Some((cpu, device, reg)) {
            return Ok((remembered.slot, remembered.rule));
        }
        let name = self.numbering.name(device).ok_or(AccessError::NoDevice)?;
        let slot = self.machine.pci.find(cpu, name).ok_or(AccessError::NoDevice)?;
        let (kind, _) = self.machine.pci.at(slot);
        let rule = self.machine.generation.and_then(|g| g.rule(kind, reg));
        cell.set(PciSlot { key: Some((cpu, device, reg)), slot, rule });
        Ok((slot, rule))
    }

    /// Whether `device` on `cpu` (a socket for PCI devices) can be used.
    pub fn check(&mut self, cpu: u32, device: i32) -> Result<(), AccessError> {
        self.unlocked()?;
        self.target(cpu, device, discovery::FAKE_BASE).map(|_| ())
    }

    /// Inlined into the request loops with its MSR half (the daemon's batch loop: a call
    /// returning the `Result` through memory cost about 25 instructions per read, callgrind);
    /// PCI and discovered registers take `read_other`.
    #[inline(always)]
    pub fn read(&mut self, cpu: u32, device: i32, reg: u32) -> Result<u64, AccessError> {
        self.unlocked()?;
        if device == MSR_DEV {
            // The same checks in the same order as through `target`, without building a
            // `Target` (a call returning it through memory: about 40 instructions per read).
            let file = self.machine.msrs.get(cpu).ok_or(AccessError::NoDevice)?;
            if !self.decisions.readable(&self.machine.policy, reg) {
                return Err(AccessError::Denied { reg, write: false });
            }
            return file.read_value(reg).map_err(AccessError::ReadWrite);
        }
        self.read_other(cpu, device, reg)
    }

    /// `read` of a PCI or discovered register, its lock check done.
    #[inline(never)]
    fn read_other(&mut self, cpu: u32, device: i32, reg: u32) -> Result<u64, AccessError> {
        let target = self.target(cpu, device, reg)?;
        if !target.readable {
            return Err(AccessError::Denied { reg, write: false });
        }
        target.device.read(target.addr).map_err(io_error)
    }

    /// Stores `value` under the write rule. Restoring a session's original values takes this
    /// path too: a register under another user's lock is not written back (that would be a
    /// write into their measurement, timed by whoever staged the "original").
    pub fn write(&mut self, cpu: u32, device: i32, reg: u32, value: u64) -> Result<(), AccessError> {
        self.unlocked()?;
        if device == MSR_DEV {
            // As `read`: `target`'s checks, without the `Target`.
            let (file, _, rule) = self.msr_target(cpu, reg)?;
            return store(file, rule, reg, reg, value);
        }
        let target = self.target(cpu, device, reg)?;
        store(&target.device, target.write, target.addr, reg, value)
    }

    /// Re-reads the lock file at most every `every` (tests: zero makes every request read it).
    #[cfg(test)]
    pub(crate) fn recheck_lock_every(&mut self, every: std::time::Duration) {
        self.lock.set_recheck(every);
    }

    /// Whether the lock is held now, read from the file whatever the recheck interval says.
    pub fn locked_now(&mut self) -> bool {
        self.lock.locked_now()
    }

    pub fn execute(&mut self, cpu: u32, device: i32, reg: u32, op: Op) -> Result<u64, AccessError> {
        match op {
            Op::Read => self.read(cpu, device, reg),
            Op::Write(value) => self.write(cpu, device, reg, value).map(|()| 0),
        }
    }
}

fn io_error(e: std::io::Error) -> AccessError {
    AccessError::ReadWrite(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Service mode (`src/service/`): one engine, opened once, serves every client in turn.
impl Engine {
    /// Serves the next requests in this client's `PciDeviceIndex` numbering (the service's
    /// restores: one engine for the sessions of every numbering). The remembered PCI addresses
    /// name devices in the old numbering: forgotten when it changes.
    pub fn set_numbering(&mut self, numbering: Numbering) {
        if numbering != self.numbering {
            self.numbering = numbering;
            self.pci_slots.iter().for_each(|slot| slot.set(NO_PCI_SLOT));
        }
    }

    /// Swaps the lock watch: the service judges LIKWID's lock file for each client's uid,
    /// not its own (root is not exempt, and a site chowns the file to the job's user).
    pub fn swap_lock(&mut self, lock: &mut LockWatch) {
        std::mem::swap(&mut self.lock, lock);
    }

    /// An engine on the same open machine for another client of the service: its own numbering,
    /// lock watch and remembered decisions, so each connection's thread executes its requests
    /// without a lock shared with the others. The device files are shared: each access is one
    /// pread/pwrite on them, which the kernel serialises per register.
    pub fn for_client(&self, numbering: Numbering, lock: LockWatch) -> Engine {
        Engine::on(self.machine.clone(), lock, numbering)
    }
}

// The service's connection threads share one machine (`Engine::for_client`).
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Machine>();
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Index 5 is PCI_IMC_DEVICE_0_CH_0 in LIKWID 5.2's numbering and PCI_R3QPI_DEVICE_LINK_4,
    /// which a Skylake-SP does not have, in 5.4's (src/policy/pci/index-5.*.txt).
    #[test]
    fn a_new_numbering_forgets_the_devices_the_old_one_named() {
        let dir = std::env::temp_dir().join(format!("likwid-engine-numbering-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        crate::sim::create(&dir, CpuModel::by_name("skx").unwrap(), &[0, 1]).unwrap();
        let uid = nix::unistd::getuid().as_raw();
        let mut engine = Engine::open(&Root::new(&dir), uid, Numbering::Likwid52).unwrap();
        assert!(engine.read(0, 5, 0xA0).is_ok(), "5.2: the iMC");
        engine.set_numbering(Numbering::Likwid54);
        assert_eq!(engine.read(0, 5, 0xA0), Err(AccessError::NoDevice), "5.4: no such device here");
        engine.set_numbering(Numbering::Likwid52);
        assert!(engine.read(0, 5, 0xA0).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
