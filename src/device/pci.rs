//! PCI config space of the uncore devices of one server generation, found in sysfs
//! (`/sys/bus/pci/devices/DDDD:BB:DD.F/{vendor,device,numa_node,config}`). Only devices in
//! the generation's table are ever opened; any other PCI device does not exist here.
//! Config space is byte-addressed, in the kernel's file and in a simulated one alike.
//! Icelake-SP's memory controllers are not in config space but memory-mapped: their windows
//! are found from the BARs of each socket's 00.1 device and reached through `/dev/mem`.

use crate::policy::pci::Generation;
use crate::root::Root;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A device's registers: its config file, or a window of `/dev/mem` starting at `base`.
#[derive(Debug)]
pub struct PciConfig {
    file: File,
    base: u64,
}

impl PciConfig {
    pub fn open(path: &Path) -> io::Result<PciConfig> {
        Ok(PciConfig { file: OpenOptions::new().read(true).write(true).open(path)?, base: 0 })
    }

    /// Registers at `base + offset` of an already open file (a `/dev/mem` window).
    pub fn window(file: File, base: u64) -> PciConfig {
        PciConfig { file, base }
    }

    /// Reads `width` (4 or 8) bytes at `offset`.
    pub fn read(&self, offset: u32, width: u8) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        let n = self.file.read_at(&mut buf[..width as usize], self.base + u64::from(offset))?;
        if n != width as usize {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(u64::from_le_bytes(buf))
    }

    pub fn write(&self, offset: u32, width: u8, value: u64) -> io::Result<()> {
        let bytes = value.to_le_bytes();
        if self.file.write_at(&bytes[..width as usize], self.base + u64::from(offset))? != width as usize {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
}

/// One uncore device found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// PciDeviceIndex name.
    pub name: String,
    pub kind: String,
    pub socket: u32,
    pub path: PathBuf,
}

/// A small sysfs attribute's text, in one `read` (open, read, close: `read_to_string` adds a
/// `statx` and a second `read`, and start-up on 600 PCI functions paid them for each file).
/// None for a missing file or one longer than a sysfs number.
fn read_attribute(path: &Path, buf: &mut [u8; 32]) -> Option<usize> {
    use std::io::Read;
    let n = File::open(path).ok()?.read(buf).ok()?;
    (n < buf.len()).then_some(n)
}

fn read_hex(path: &Path) -> Option<u64> {
    let mut buf = [0u8; 32];
    let n = read_attribute(path, &mut buf)?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

fn read_decimal(path: &Path) -> Option<i64> {
    let mut buf = [0u8; 32];
    let n = read_attribute(path, &mut buf)?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// `DDDD:BB:DD.F` → (domain, bus, device, function).
fn parse_address(name: &str) -> Option<(u32, u8, u8, u8)> {
    let (domain, rest) = name.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    Some((
        u32::from_str_radix(domain, 16).ok()?,
        u8::from_str_radix(bus, 16).ok()?,
        u8::from_str_radix(dev, 16).ok()?,
        u8::from_str_radix(func, 16).ok()?,
    ))
}

/// The generation's devices under `root`, each with its socket: its NUMA node when the
/// kernel knows it, else its rank in bus order among the devices of the same name.
pub fn scan(root: &Root, generation: &Generation) -> Vec<Found> {
    let dir = root.pci_devices();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    struct Match {
        entry: usize,
        address: (u32, u8),
        numa: Option<u32>,
        config: PathBuf,
    }
    let mut matched: Vec<Match> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((domain, bus, dev, func)) = name.to_str().and_then(parse_address) else { continue };
        // Decide from the cheapest facts first: the slot in the name (no system call), then
        // the vendor, then the device id; numa_node only for a device we serve.
        let slot = |e: &&crate::policy::pci::DeviceEntry| (e.dev, e.func) == (dev, func);
        if !generation.devices.iter().any(|e| slot(&e)) {
            continue;
        }
        let path = entry.path();
        let Some(vendor) = read_hex(&path.join("vendor")) else { continue };
        if !generation.devices.iter().filter(slot).any(|e| u64::from(e.vendor) == vendor) {
            continue;
        }
        let Some(device) = read_hex(&path.join("device")) else { continue };
        let mut entries = generation
            .devices
            .iter()
            .enumerate()
            .filter(|(_, e)| slot(e) && (u64::from(e.vendor), u64::from(e.device)) == (vendor, device));
        let Some(first) = entries.next() else { continue };
        let numa = read_decimal(&path.join("numa_node")).filter(|n| *n >= 0).map(|n| n as u32);
        for (i, _) in std::iter::once(first).chain(entries) {
            matched.push(Match { entry: i, address: (domain, bus), numa, config: path.join("config") });
        }
    }
    let name = |m: &Match| generation.devices[m.entry].name.as_str();
    matched.sort_by(|a, b| (name(a), a.address).cmp(&(name(b), b.address)));
    let mut rank: BTreeMap<&str, u32> = BTreeMap::new();
    matched
        .iter()
        .map(|m| {
            let next = rank.entry(name(m)).or_insert(0);
            let socket = m.numa.unwrap_or(*next);
            *next += 1;
            let e = &generation.devices[m.entry];
            Found { name: e.name.clone(), kind: e.kind.clone(), socket, path: m.config.clone() }
        })
        .collect()
}

/// Name of the per-socket device whose config space holds the memory-controller BARs.
pub const MMIO_BASE: &str = "MMIO_BASE";
/// Box types of the memory-mapped windows.
pub const MMIO_CHANNEL: &str = "MMIO_IMC";
pub const MMIO_FREERUN: &str = "MMIO_FREERUN";

/// Which window a LIKWID MMIO device name means: `MMIO_IMC_DEVICE_<c>_CH_<n>` is channel
/// 2c+n (5.2 names two channels per controller, 5.3+ counts all eight under controller 0),
/// `MMIO_IMC_DEVICE_<c>_FREERUN` the free-running counters of controller c.
pub fn mmio_window(name: &str) -> Option<(&'static str, u32)> {
    let rest = name.strip_prefix("MMIO_IMC_DEVICE_")?;
    let (controller, what) = rest.split_once('_')?;
    let controller: u32 = controller.parse().ok()?;
    match what.strip_prefix("CH_") {
        Some(channel) => Some((MMIO_CHANNEL, 2 * controller + channel.parse::<u32>().ok()?)),
        None if what == "FREERUN" => Some((MMIO_FREERUN, controller)),
        None => None,
    }
}

/// The windows of one socket from the BARs in its 00.1 device's config space (Icelake-SP):
/// base = (cfg[0xD0] & 0x1FFFFFFF) << 23; controller c's block = base | (cfg[0xD8 + 4c] & 0x7FF)
/// << 12; channel k's window at block(k/2) + 0x22800 + 0x4000·(k%2); free-running at
/// block(c) + 0x2290. A BAR that reads 0 (not programmed: the windows would land in low
/// physical memory, over whatever lives there) or all ones (no such device) is refused, for
/// the socket or for that controller.
pub fn mmio_windows(config: &PciConfig) -> io::Result<Vec<(&'static str, u32, u64)>> {
    let unusable = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let base_bar = config.read(0xD0, 4)?;
    if base_bar & 0x1FFF_FFFF == 0 || base_bar == 0xFFFF_FFFF {
        return Err(unusable(format!("memory-controller base BAR reads {base_bar:#x}")));
    }
    let base = (base_bar & 0x1FFF_FFFF) << 23;
    let mut out = Vec::new();
    for c in 0..4u32 {
        let bar = config.read(0xD8 + 4 * c, 4)?;
        if bar == 0xFFFF_FFFF {
            log::warn!("memory controller {c}: its BAR reads {bar:#x}; its counters are not served");
            continue;
        }
        let block = base | ((bar & 0x7FF) << 12);
        for n in 0..2u32 {
            out.push((MMIO_CHANNEL, 2 * c + n, block + 0x22800 + 0x4000 * u64::from(n)));
        }
        out.push((MMIO_FREERUN, c, block + 0x2290));
    }
    Ok(out)
}

/// Opens `/dev/mem` once (before the privilege drop) and maps every socket's windows to it.
fn open_mmio(root: &Root, generation: &Generation, devices: &mut BTreeMap<(u32, String), (String, PciConfig)>) {
    let bases: Vec<u32> = devices.iter().filter(|((_, n), _)| n == MMIO_BASE).map(|((s, _), _)| *s).collect();
    if bases.is_empty() || !generation.rules.iter().any(|r| r.kind == MMIO_CHANNEL) {
        return;
    }
    let mem_path = root.base().join("dev/mem");
    let mem = match OpenOptions::new().read(true).write(true).open(&mem_path) {
        Ok(f) => f,
        Err(e) => return log::warn!("memory-controller counters unavailable: cannot open {}: {e}", mem_path.display()),
    };
    for socket in bases {
        let windows = match mmio_windows(&devices[&(socket, MMIO_BASE.to_string())].1) {
            Ok(w) => w,
            Err(e) => {
                log::warn!("socket {socket}: memory-controller counters not served: {e}");
                continue;
            }
        };
        for (kind, index, base) in windows {
            if let Ok(file) = mem.try_clone() {
                devices.insert((socket, format!("{kind}#{index}")), (kind.to_string(), PciConfig { file, base }));
            }
        }
    }
}

/// The open config files of every uncore device, by (socket, PciDeviceIndex name), sorted: a
/// device is also named by its position (`find`, `at`), which the engine remembers per request
/// address instead of looking the name up again.
#[derive(Debug, Default)]
pub struct PciDevices {
    devices: Vec<((u32, String), (String, PciConfig))>,
}

impl PciDevices {
    /// Opens every device the generation has under `root` (before any privilege drop).
    /// A device that cannot be opened is left out and logged; it then answers NODEV.
    pub fn open_all(root: &Root, generation: Option<&Generation>) -> PciDevices {
        let mut devices = BTreeMap::new();
        for found in generation.map(|g| scan(root, g)).unwrap_or_default() {
            match PciConfig::open(&found.path) {
                Ok(config) => {
                    devices.insert((found.socket, found.name), (found.kind, config));
                }
                Err(e) => log::warn!("cannot open {}: {e}", found.path.display()),
            }
        }
        if let Some(g) = generation {
            open_mmio(root, g, &mut devices);
        }
        PciDevices { devices: devices.into_iter().collect() }
    }

    /// The device `name` (a PciDeviceIndex name) on `socket` and its type.
    pub fn get(&self, socket: u32, name: &str) -> Option<(&str, &PciConfig)> {
        self.find(socket, name).map(|slot| self.at(slot))
    }

    /// The position of device `name` on `socket`, for `at`.
    pub fn find(&self, socket: u32, name: &str) -> Option<usize> {
        let key = match mmio_window(name) {
            Some((kind, index)) => std::borrow::Cow::Owned(format!("{kind}#{index}")),
            None if name == MMIO_BASE => return None,
            None => std::borrow::Cow::Borrowed(name),
        };
        self.devices.binary_search_by(|((s, n), _)| (*s, n.as_str()).cmp(&(socket, &*key))).ok()
    }

    /// The device at `slot` (from `find`) and its type.
    pub fn at(&self, slot: usize) -> (&str, &PciConfig) {
        let (_, (kind, config)) = &self.devices[slot];
        (kind.as_str(), config)
    }

    /// (socket, name) of every device, in order.
    pub fn list(&self) -> impl Iterator<Item = (u32, &str)> {
        self.devices.iter().map(|((s, n), _)| (*s, n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(dir: &Path, name: &str, id: &str, numa: &str) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("vendor"), "0x8086\n").unwrap();
        std::fs::write(d.join("device"), format!("{id}\n")).unwrap();
        std::fs::write(d.join("numa_node"), format!("{numa}\n")).unwrap();
        std::fs::write(d.join("config"), [0u8; 256]).unwrap();
    }

    #[test]
    fn sockets_come_from_numa_node_else_bus_order_and_other_devices_are_ignored() {
        let dir = std::env::temp_dir().join(format!("likwid-pci-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = Root::new(&dir);
        let devs = root.pci_devices();
        let skx = Generation::for_model("skx").unwrap();
        device(&devs, "0000:97:0e.0", "0x2058", "-1"); // UPI port 0, higher bus: socket 1
        device(&devs, "0000:17:0e.0", "0x2058", "-1"); // UPI port 0, lower bus: socket 0
        device(&devs, "0000:3a:0a.2", "0x2042", "1"); // IMC 0 channel 0 on NUMA node 1
        device(&devs, "0000:3a:0a.3", "0x2042", "0"); // right id, wrong function: not an IMC
        device(&devs, "0000:00:1f.6", "0x15b8", "0"); // a NIC
        let mut found: Vec<(String, u32)> = scan(&root, skx).into_iter().map(|f| (f.name, f.socket)).collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                ("PCI_IMC_DEVICE_0_CH_0".to_string(), 1),
                ("PCI_QPI_DEVICE_PORT_0".to_string(), 0),
                ("PCI_QPI_DEVICE_PORT_0".to_string(), 1)
            ]
        );
        let opened = PciDevices::open_all(&root, Some(skx));
        assert_eq!(opened.list().count(), 3);
        assert!(opened.get(1, "PCI_IMC_DEVICE_0_CH_0").is_some_and(|(kind, _)| kind == "IMC"));
        assert_eq!(PciDevices::open_all(&root, None).list().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mmio_names_of_both_numberings_name_the_same_windows() {
        assert_eq!(mmio_window("MMIO_IMC_DEVICE_0_CH_0"), Some((MMIO_CHANNEL, 0)));
        assert_eq!(mmio_window("MMIO_IMC_DEVICE_1_CH_1"), Some((MMIO_CHANNEL, 3)), "5.2: two channels per controller");
        assert_eq!(mmio_window("MMIO_IMC_DEVICE_0_CH_7"), Some((MMIO_CHANNEL, 7)), "5.3+: eight under controller 0");
        assert_eq!(mmio_window("MMIO_IMC_DEVICE_2_FREERUN"), Some((MMIO_FREERUN, 2)));
        assert_eq!(mmio_window("PCI_IMC_DEVICE_0_CH_0"), None);
        assert_eq!(mmio_window("MMIO_IMC_DEVICE_X_CH_0"), None);
    }

    #[test]
    fn unprogrammed_or_absent_memory_controller_bars_are_refused() {
        let path = std::env::temp_dir().join(format!("likwid-bar-test-{}", std::process::id()));
        let bars = |base: u32, controller1: u32| {
            let mut config = vec![0u8; 4096];
            config[0xD0..0xD4].copy_from_slice(&base.to_le_bytes());
            for c in 0..4usize {
                let v: u32 = if c == 1 { controller1 } else { c as u32 + 1 };
                config[0xD8 + 4 * c..0xDC + 4 * c].copy_from_slice(&v.to_le_bytes());
            }
            std::fs::write(&path, config).unwrap();
            mmio_windows(&PciConfig::open(&path).unwrap())
        };
        for bad in [0, 0xE000_0000, u32::MAX] {
            assert!(bars(bad, 2).is_err(), "base BAR {bad:#x}");
        }
        let windows = bars(1, 2).unwrap();
        assert_eq!(windows.len(), 12);
        assert_eq!(windows[0], (MMIO_CHANNEL, 0, (1 << 23) | (1 << 12) | 0x22800));
        let windows = bars(1, u32::MAX).unwrap();
        assert_eq!(windows.len(), 9, "controller 1 left out");
        assert!(windows.iter().all(|(kind, i, _)| !(*kind == MMIO_FREERUN && *i == 1)));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn sysfs_addresses_parse() {
        assert_eq!(parse_address("0000:3a:0a.2"), Some((0, 0x3a, 0x0a, 2)));
        assert_eq!(parse_address("0000:3a:0a"), None);
        assert_eq!(parse_address("pci0000:00"), None);
    }
}
