//! Harnesses for the fuzz targets in `fuzz/` (`make fuzz`) and for `tests/fuzz_corpus.rs`,
//! which replays the committed corpus in every `cargo test`. Each takes arbitrary bytes and
//! panics, with the values it saw, when a promise breaks; anything else is a pass.

mod session;
mod stream;

pub use session::session;
pub use stream::{greeting, wire_stream};

use crate::daemon::Peer;
use crate::device::pci::PciDevices;
use crate::device::MsrFile;
use crate::engine::Engine;
use crate::policy::pci::{self, Generation, Numbering};
use crate::policy::{self, CpuModel, Policy};
use crate::root::Root;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// A simulated machine (register-store files) the session and wire harnesses run against.
pub struct Machine {
    model: &'static CpuModel,
    /// Opened once: inputs run back to back, and opening costs more than most inputs.
    engine: Mutex<Engine>,
    policy: Policy,
    /// The device files, opened by the harness itself: the ground truth beside the engine.
    msrs: BTreeMap<u32, MsrFile>,
    pci: PciDevices,
}

impl Machine {
    /// Creates (or reuses) a simulated `model` ("zen4", "skx", ...) with 4 CPUs on 2 sockets.
    pub fn create(dir: &Path, model: &str) -> std::io::Result<Machine> {
        let model = CpuModel::by_name(model).ok_or_else(|| std::io::Error::other(format!("no model {model}")))?;
        crate::sim::create_sockets(dir, model, &[0, 1, 2, 3], 2)?;
        let root = Root::new(dir);
        let engine = Engine::open(&root, uid(), Numbering::Likwid52).map_err(|e| std::io::Error::other(e.message))?;
        let msrs = (0..4).map(|cpu| Ok((cpu, MsrFile::open(&root.msr(cpu))?))).collect::<std::io::Result<_>>()?;
        let pci = PciDevices::open_all(&root, Generation::for_model(model.name));
        Ok(Machine { model, engine: Mutex::new(engine), policy: Policy::builtin(model), msrs, pci })
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn generation(&self) -> Option<&'static Generation> {
        Generation::for_model(self.model.name)
    }
}

/// The machines the harnesses pick from: a Zen 4 (MSRs only) and a Skylake-SP (PCI uncore too).
pub struct Machines {
    zen4: Machine,
    skx: Machine,
}

impl Machines {
    pub fn create(dir: &Path) -> std::io::Result<Machines> {
        Ok(Machines {
            zen4: Machine::create(&dir.join("zen4"), "zen4")?,
            skx: Machine::create(&dir.join("skx"), "skx")?,
        })
    }

    /// Bit 3 of a harness's first byte picks the Skylake-SP.
    fn pick(&self, flags: u8) -> &Machine {
        if flags & 8 != 0 {
            &self.skx
        } else {
            &self.zen4
        }
    }
}

fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

fn peer() -> Peer {
    Peer { uid: uid(), pid: std::process::id() as i32 }
}

/// The text parsers: allowlist (built-in tables and the site file), PCI numbering, device and
/// register tables, the site's numbering switch, `/proc/cpuinfo`.
pub fn parsers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(rules) = policy::parse(&text) {
        for pair in rules.windows(2) {
            assert!(pair[0].last < pair[1].first, "rules overlap or are unsorted: {pair:?}");
        }
        let rendered: String =
            rules.iter().map(|r| format!("{:#x}-{:#x} {:#x}\n", r.first, r.last, r.write_mask)).collect();
        assert_eq!(policy::parse(&rendered).as_ref(), Ok(&rules), "rendering does not parse back");
        let table = Policy::new("fuzz", &text).expect("parsed once, parses again");
        for rule in &rules {
            for reg in [rule.first, rule.last] {
                assert!(table.may_read(reg), "{reg:#x} listed but not readable");
                let mask = table.write_mask(reg).unwrap_or(0);
                assert_eq!(mask & !rule.write_mask, 0, "{reg:#x}: mask {mask:#x} beyond the table's");
            }
            if let Some(after) = rule.last.checked_add(1) {
                let listed = rules.iter().any(|r| (r.first..=r.last).contains(&after));
                assert_eq!(table.may_read(after), listed, "{after:#x} readable without a rule");
            }
        }
    }
    if let Ok(numbers) = pci::parse_numbering(&text) {
        assert!(numbers.windows(2).all(|w| w[0].0 < w[1].0), "numbering not sorted and unique");
    }
    let _ = pci::parse_devices(&text);
    if let Ok(rules) = pci::parse_rules(&text) {
        for r in rules {
            let width = u32::from(r.width);
            assert!(matches!(r.width, 4 | 8) && r.first % width == 0 && r.last < 4096, "{r:?}");
            assert!(r.width == 8 || r.write_mask >> 32 == 0, "{r:?}");
        }
    }
    if let Some(n) = Numbering::parse(&text) {
        assert_eq!(Numbering::parse(n.label()), Some(n));
    }
    if let Some(id) = policy::parse_cpuinfo(&text) {
        let _ = CpuModel::for_identity(&id);
    }
    let sockets = policy::cpu_sockets(&text);
    assert!(sockets.windows(2).all(|w| w[0] <= w[1]), "cpu list not sorted");
}
