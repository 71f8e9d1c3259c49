//! PCI config space of the uncore devices of one server generation, found in sysfs
//! (`/sys/bus/pci/devices/DDDD:BB:DD.F/{vendor,device,numa_node,config}`). Only devices in
//! the generation's table are ever opened; any other PCI device does not exist here.
//! Config space is byte-addressed, in the kernel's file and in a simulated one alike.
//! Icelake-SP's memory controllers are not in config space but memory-mapped: their windows
//! are found from the BARs of each socket's 00.1 device and reached through `/dev/mem`.

use crate::policy::pci::Generation;
use crate::root::Root;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
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
    pub name: &'static str,
    pub kind: &'static str,
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

/// `DDDD:BB:DD.F` → (domain, bus, device, function), from the bytes of a sysfs name. The
/// kernel names every function `%04x:%02x:%02x.%d` (dev_set_name in drivers/pci/probe.c,
/// pci_setup_device), read at fixed places; any other shape field by field (`fields`). A big
/// site lists 600 names at every start: through `str::from_utf8` and the field-by-field
/// parser they cost ~490 instructions each (callgrind).
fn parse_address(name: &[u8]) -> Option<(u32, u8, u8, u8)> {
    if let [domain @ .., b':', b1, b2, b':', d1, d2, b'.', f] = name {
        if !domain.contains(&b':') {
            let two = |hi: u8, lo: u8| Some((hex_digit(hi)? << 4 | hex_digit(lo)?) as u8);
            return Some((hex_number(domain)?, two(*b1, *b2)?, two(*d1, *d2)?, hex_digit(*f)? as u8));
        }
    }
    fields(name)
}

/// `parse_address` for any shape: the fields between `:`, `:` and `.`, 1 to 8 hex digits each.
fn fields(name: &[u8]) -> Option<(u32, u8, u8, u8)> {
    fn split(b: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
        b.iter().position(|&c| c == at).map(|i| (&b[..i], &b[i + 1..]))
    }
    let (domain, rest) = split(name, b':')?;
    let (bus, rest) = split(rest, b':')?;
    let (dev, func) = split(rest, b'.')?;
    let byte = |digits| hex_number(digits).and_then(|n| u8::try_from(n).ok());
    Some((hex_number(domain)?, byte(bus)?, byte(dev)?, byte(func)?))
}

fn hex_digit(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(b - b'A' + 10)),
        _ => None,
    }
}

/// The number in 1 to 8 hex digits `digits` (no sign, no prefix), None for anything else.
fn hex_number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| Some(n << 4 | hex_digit(b)?))
}

/// Bus and devfn of a function as one number, as `/proc/bus/pci/devices` prints it.
fn bus_devfn(bus: u8, dev: u8, func: u8) -> u16 {
    u16::from(bus) << 8 | u16::from(dev & 0x1F) << 3 | u16::from(func & 7)
}

/// The kernel's one-file list of every PCI function, `/proc/bus/pci/devices`, as sorted
/// (bus·devfn, vendor·device) pairs. Each line starts `BBDF\tVVVVDDDD\t` (show_device in the
/// kernel's drivers/pci/proc.c: bus number and devfn, then the `vendor` and `device` of the
/// pci_dev, the same fields sysfs's `vendor` and `device` attributes print) for every function
/// of every domain, but without the domain: on a machine with several domains, two lines can
/// share a bus·devfn. (LIKWID 5.5.1's src/pci_proc.c reads this file and ignores domains.)
/// None when a line does not read so.
fn proc_pci_ids(text: &str) -> Option<Vec<(u16, u32)>> {
    let mut ids = Vec::new();
    for line in crate::policy::lines::lines(text) {
        let b = line.as_bytes();
        if b.len() < 13 || b[4] != b'\t' || b.get(13).is_some_and(|&c| c != b'\t') {
            return None;
        }
        ids.push((hex_number(&b[..4])? as u16, hex_number(&b[5..13])?));
    }
    ids.sort_unstable();
    Some(ids)
}

/// The `/proc/bus/pci/devices` list, if it lists exactly the functions sysfs does (`keys`: the
/// bus·devfn of every sysfs entry, sorted). Anything else (no such file, a private sysfs bound
/// over the real one, a function hot-plugged between the two reads) and it is not used.
fn consistent_proc_ids(root: &Root, keys: &[u16]) -> Option<Vec<(u16, u32)>> {
    let text = std::fs::read_to_string(root.base().join("proc/bus/pci/devices")).ok()?;
    let ids = proc_pci_ids(&text)?;
    (ids.len() == keys.len() && ids.iter().zip(keys).all(|((k, _), key)| k == key)).then_some(ids)
}

/// Sorts bus·devfn keys: a big site's 600 by two counting passes of a byte each (~40
/// instructions a key; ipnsort took ~170, callgrind), a few as usual.
fn sort_keys(keys: &mut Vec<u16>) {
    if keys.len() <= 64 {
        return keys.sort_unstable();
    }
    let mut out = vec![0u16; keys.len()];
    for shift in [0, 8] {
        let mut at = [0usize; 257];
        for &k in keys.iter() {
            at[usize::from(k >> shift & 0xFF) + 1] += 1;
        }
        for b in 0..256 {
            at[b + 1] += at[b];
        }
        for &k in keys.iter() {
            let b = usize::from(k >> shift & 0xFF);
            out[at[b]] = k;
            at[b] += 1;
        }
        std::mem::swap(keys, &mut out);
    }
}

/// What the kernel's list says about one bus·devfn.
enum Listed {
    /// One function there, with these ids: it is the function of that bus·devfn in sysfs.
    Once(u16, u16),
    /// Several (one per domain), none with ids the table serves at that slot.
    NoneServed,
    /// Several, and one of them may be served: each function's own files must say which.
    Ambiguous,
}

fn listed(ids: &[(u16, u32)], key: u16, served: impl Fn(u16, u16) -> bool) -> Listed {
    let split = |id: u32| ((id >> 16) as u16, id as u16);
    let lines = &ids[ids.partition_point(|(k, _)| *k < key)..ids.partition_point(|(k, _)| *k <= key)];
    match lines {
        [(_, id)] => Listed::Once(split(*id).0, split(*id).1),
        _ if lines.iter().any(|(_, id)| served(split(*id).0, split(*id).1)) => Listed::Ambiguous,
        _ => Listed::NoneServed,
    }
}

/// A function's ids from its own sysfs `vendor` and `device` files (`path`: its directory,
/// restored on return); the device file is read only when the vendor may be served.
fn file_ids(path: &mut Vec<u8>, vendor_served: impl Fn(u16) -> bool) -> Option<(u16, u16)> {
    let len = path.len();
    let mut read = |attr: &[u8]| {
        path.extend_from_slice(attr);
        let value = read_hex(Path::new(OsStr::from_bytes(path))).and_then(|v| u16::try_from(v).ok());
        path.truncate(len);
        value
    };
    let vendor = read(b"/vendor").filter(|v| vendor_served(*v))?;
    Some((vendor, read(b"/device")?))
}

/// The generation's devices under `root`, each with its socket: its NUMA node when the
/// kernel knows it, else its rank in bus order among the devices of the same name. A function
/// is an uncore device only when its slot, vendor and device id are all in the table; they are
/// decided from the cheapest facts first: the slot in its name, then the kernel's list of every
/// function when that agrees with sysfs, else its vendor file, then its device file (on a site
/// with 600 functions, two files per function cost 4.7 ms of system calls at each start).
pub fn scan(root: &Root, generation: &Generation) -> Vec<Found> {
    // (bus·devfn's devfn, vendor·device) of every table entry, sorted, and the devfns alone:
    // looked up once or twice per function of the site, not by walking the table.
    let devfn = |dev: u8, func: u8| (dev < 0x20 && func < 8).then(|| bus_devfn(0, dev, func));
    let mut table: Vec<(u16, u32)> = generation
        .devices
        .iter()
        .filter_map(|e| Some((devfn(e.dev, e.func)?, u32::from(e.vendor) << 16 | u32::from(e.device))))
        .collect();
    table.sort_unstable();
    let at_slot =
        |slot: u16| &table[table.partition_point(|(d, _)| *d < slot)..table.partition_point(|(d, _)| *d <= slot)];
    let dir = root.pci_devices();
    let mut keys = Vec::new();
    // Candidates at a served slot: their names one after another in `names`.
    let (mut names, mut candidates) = (Vec::new(), Vec::new());
    let scanned = crate::sys::for_each_name(&dir, |name| {
        let Some((domain, bus, dev, func)) = parse_address(name) else { return };
        keys.push(bus_devfn(bus, dev, func));
        if devfn(dev, func).is_some_and(|slot| !at_slot(slot).is_empty()) {
            candidates.push((names.len()..names.len() + name.len(), domain, bus, dev, func));
            names.extend_from_slice(name);
        }
    });
    if scanned.is_err() {
        return Vec::new();
    }
    sort_keys(&mut keys);
    let proc_ids = if candidates.is_empty() { None } else { consistent_proc_ids(root, &keys) };
    struct Match {
        entry: usize,
        address: (u32, u8),
        numa: Option<u32>,
        config: PathBuf,
    }
    let mut matched: Vec<Match> = Vec::new();
    let mut path = dir.into_os_string().into_vec();
    path.push(b'/');
    let dir_len = path.len();
    for (name, domain, bus, dev, func) in candidates {
        let ids_here = at_slot(bus_devfn(0, dev, func));
        let served = |v: u16, d: u16| ids_here.iter().any(|(_, id)| *id == u32::from(v) << 16 | u32::from(d));
        path.truncate(dir_len);
        path.extend_from_slice(&names[name]);
        let ids = match proc_ids.as_deref().map(|ids| listed(ids, bus_devfn(bus, dev, func), served)) {
            Some(Listed::Once(v, d)) => Some((v, d)),
            Some(Listed::NoneServed) => None,
            Some(Listed::Ambiguous) | None => {
                file_ids(&mut path, |v| ids_here.iter().any(|(_, id)| *id >> 16 == u32::from(v)))
            }
        };
        let Some((vendor, device)) = ids.filter(|&(v, d)| served(v, d)) else { continue };
        let base = Path::new(OsStr::from_bytes(&path));
        let numa = read_decimal(&base.join("numa_node")).filter(|n| *n >= 0).map(|n| n as u32);
        for (i, e) in generation.devices.iter().enumerate() {
            if (e.dev, e.func, e.vendor, e.device) == (dev, func, vendor, device) {
                matched.push(Match { entry: i, address: (domain, bus), numa, config: base.join("config") });
            }
        }
    }
    let name = |m: &Match| generation.devices[m.entry].name;
    matched.sort_by(|a, b| (name(a), a.address).cmp(&(name(b), b.address)));
    let mut rank: BTreeMap<&str, u32> = BTreeMap::new();
    matched
        .iter()
        .map(|m| {
            let next = rank.entry(name(m)).or_insert(0);
            let socket = m.numa.unwrap_or(*next);
            *next += 1;
            let e = &generation.devices[m.entry];
            Found { name: e.name, kind: e.kind, socket, path: m.config.clone() }
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
                    devices.insert((found.socket, found.name.to_string()), (found.kind.to_string(), config));
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
mod tests;
