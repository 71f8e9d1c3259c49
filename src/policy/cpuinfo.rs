//! The kernel's `/proc/cpuinfo`, read by one parser in one pass: the first processor's vendor,
//! family and model (which built-in table serves the machine), and which socket each hardware
//! thread sits on (LIKWID addresses PCI uncore devices by socket, and its clients put the
//! socket in a record's `cpu`). Pure: the caller reads the file, once.

use super::cpu::{CpuIdentity, Vendor};

/// What the daemon and the tools need from `/proc/cpuinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// The first processor's identity; None when vendor_id, cpu family or model is missing.
    pub identity: Option<CpuIdentity>,
    /// `(processor, physical id)` for every processor entry, sorted; a missing physical id is
    /// socket 0.
    pub sockets: Vec<(u32, u32)>,
}

impl CpuInfo {
    pub fn parse(text: &str) -> CpuInfo {
        let mut sockets = Vec::new();
        let mut current: Option<(u32, u32)> = None;
        let (mut vendor, mut family, mut model) = (None, None, None);
        for line in super::lines::lines(text) {
            let Some((key, value)) = field(line) else { continue };
            match key {
                "processor" => {
                    sockets.extend(current.take());
                    current = value.parse().ok().map(|cpu| (cpu, 0));
                }
                "physical id" => {
                    if let (Some(entry), Ok(socket)) = (current.as_mut(), value.parse()) {
                        entry.1 = socket;
                    }
                }
                // The first occurrence of each names the first processor.
                "vendor_id" if vendor.is_none() => vendor = Some(value),
                "cpu family" if family.is_none() => family = Some(value),
                "model" if model.is_none() => model = Some(value),
                _ => {}
            }
        }
        sockets.extend(current);
        sockets.sort_unstable();
        let identity = (|| {
            let vendor = match vendor? {
                "GenuineIntel" => Some(Vendor::Intel),
                "AuthenticAMD" => Some(Vendor::Amd),
                _ => None,
            };
            Some(CpuIdentity { vendor, family: family?.parse().ok()?, model: model?.parse().ok()? })
        })();
        CpuInfo { identity, sockets }
    }

    /// `(cpu, socket)` for each of `cpus` (sorted); socket 0 where cpuinfo is silent.
    pub fn sockets_of(&self, cpus: &[u32]) -> Vec<(u32, u32)> {
        let known = &self.sockets;
        cpus.iter().map(|&cpu| (cpu, known.binary_search_by_key(&cpu, |(c, _)| *c).map_or(0, |i| known[i].1))).collect()
    }
}

/// The keys `CpuInfo::parse` reads.
const KEYS: [&str; 5] = ["processor", "physical id", "vendor_id", "cpu family", "model"];

/// The trimmed key and value of a `key : value` line (split at the first colon), or None when
/// the key is certainly not one of `KEYS`. The kernel starts each line with its key, and every
/// key read starts with p, v, c or m: such a line is compared with the keys by its first bytes,
/// and a line starting with any other letter or digit is passed over without looking for its
/// colon (the ~1 KB `flags` line of every processor among them). Only a line starting with
/// anything else (space, punctuation, non-ASCII) is split and trimmed in full. A 256-CPU
/// simulated cpuinfo cost the daemon 1.3 M instructions when every line was (callgrind).
fn field(line: &str) -> Option<(&str, &str)> {
    let keys: &[&'static str] = match line.as_bytes().first()? {
        b'p' => &KEYS[..2],
        b'v' => &KEYS[2..3],
        b'c' => &KEYS[3..4],
        b'm' => &KEYS[4..],
        b if b.is_ascii_alphanumeric() => return None,
        _ => return line.split_once(':').map(|(key, value)| (key.trim(), value.trim())),
    };
    let (key, rest) = keys.iter().find_map(|&key| Some((key, line.strip_prefix(key)?)))?;
    // The key's end: spaces and tabs, then the colon (anything but ASCII goes the general way).
    let gap = rest.bytes().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(rest.len());
    match rest.as_bytes().get(gap) {
        Some(b':') => Some((key, rest[gap + 1..].trim())),
        Some(b) if !b.is_ascii() => {
            let (gap, value) = rest.split_once(':')?;
            gap.trim().is_empty().then(|| (key, value.trim()))
        }
        _ => None,
    }
}

/// The first processor's vendor, family and model. None when a field is missing.
pub fn parse_cpuinfo(text: &str) -> Option<CpuIdentity> {
    CpuInfo::parse(text).identity
}

/// `(processor, physical id)` for every processor entry; a missing physical id is socket 0.
pub fn cpu_sockets(text: &str) -> Vec<(u32, u32)> {
    CpuInfo::parse(text).sockets
}

/// `(cpu, socket)` for each of `cpus` (sorted), by the cpuinfo `text`.
pub fn sockets_of(text: &str, cpus: &[u32]) -> Vec<(u32, u32)> {
    CpuInfo::parse(text).sockets_of(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_processor_gets_its_physical_id() {
        let text = "processor : 0\nphysical id : 0\n\nprocessor : 1\nphysical id : 1\n\nprocessor : 5\nmodel : 1\n";
        assert_eq!(cpu_sockets(text), vec![(0, 0), (1, 1), (5, 0)]);
        assert!(cpu_sockets("").is_empty());
        assert_eq!(sockets_of(text, &[1, 5, 7]), vec![(1, 1), (5, 0), (7, 0)]);
    }

    /// The fast way through a line gives what splitting at the first colon and trimming gives,
    /// for the keys read, on lines shaped like the kernel's and on odd ones.
    #[test]
    fn fields_are_the_trimmed_split_at_the_first_colon() {
        fn general(line: &str) -> Option<(&str, &str)> {
            line.split_once(':').map(|(k, v)| (k.trim(), v.trim())).filter(|(k, _)| KEYS.contains(k))
        }
        for line in [
            "processor\t: 7",
            "physical id\t: 1",
            "vendor_id\t: GenuineIntel",
            "cpu family\t: 6",
            "model\t\t: 85",
            "model name\t: Intel(R) Xeon(R): a colon",
            "cpu MHz\t\t: 2500.000",
            "cpu cores\t: 4",
            "core id\t\t: 3",
            "power management:",
            "processor",
            "processor:",
            "processorx : 1",
            "model\u{a0}: 5",
            " model : 9",
            "\tprocessor\t: 2",
            "\u{2003}model: 4",
            ": 3",
            "",
            "flags\t\t: fpu vme de pse : model",
            "9 model : 1",
            "processor \u{a0}: 3",
            "processor \u{a0}x: 3",
            "model\t:",
            "vendor_id:x",
            "physical id : 1 : 2",
            "cpu family\u{2003}",
        ] {
            assert_eq!(field(line).filter(|(k, _)| KEYS.contains(k)), general(line), "{line:?}");
        }
    }

    #[test]
    fn one_pass_gives_the_first_processors_identity_and_every_socket() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
                    model name\t: Intel(R) Xeon(R)\nphysical id\t: 0\n\n\
                    processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nphysical id\t: 1\n";
        let info = CpuInfo::parse(text);
        assert_eq!(info.identity, Some(CpuIdentity { vendor: Some(Vendor::Intel), family: 6, model: 85 }));
        assert_eq!(info.sockets, vec![(0, 0), (1, 1)]);
        assert_eq!(CpuInfo::parse("processor : 3\n").identity, None);
    }
}
