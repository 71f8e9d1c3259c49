//! Which socket each hardware thread sits on, from the kernel's `/proc/cpuinfo`. LIKWID
//! addresses PCI uncore devices by socket, and its clients put the socket in a record's `cpu`.

/// `(processor, physical id)` for every processor entry; a missing physical id is socket 0.
pub fn cpu_sockets(cpuinfo: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut current: Option<(u32, u32)> = None;
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        match key.trim() {
            "processor" => {
                out.extend(current.take());
                current = value.trim().parse().ok().map(|cpu| (cpu, 0));
            }
            "physical id" => {
                if let (Some(entry), Ok(socket)) = (current.as_mut(), value.trim().parse()) {
                    entry.1 = socket;
                }
            }
            _ => {}
        }
    }
    out.extend(current);
    out.sort_unstable();
    out
}

/// `(cpu, socket)` for each of `cpus` (sorted), by `/proc/cpuinfo`; socket 0 where it is silent.
pub fn sockets_of(cpuinfo: &str, cpus: &[u32]) -> Vec<(u32, u32)> {
    let known = cpu_sockets(cpuinfo);
    cpus.iter().map(|&cpu| (cpu, known.binary_search_by_key(&cpu, |(c, _)| *c).map_or(0, |i| known[i].1))).collect()
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
}
