//! The kernel's CPU list text (`0-3,8,10-11`), as cpusets, sysfs and our `--cpu` options
//! write it. Pure.

/// A range longer than this in a CPU list is refused: no machine has that many CPUs, and a
/// list must not make us allocate what its text claims.
const MAX_RANGE: u32 = 1 << 16;

/// `0-3,8,10-11` → [0, 1, 2, 3, 8, 10, 11]; None for anything else. An empty text is an empty
/// list (a cgroup v1 cpuset nobody configured).
pub fn parse(text: &str) -> Option<Vec<u32>> {
    let text = text.trim();
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Some(cpus);
    }
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let n = part.trim().parse::<u32>().ok()?;
                (n, n)
            }
        };
        if last < first || last - first >= MAX_RANGE || cpus.len() as u32 > MAX_RANGE {
            return None;
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// [0, 1, 2, 5] → `0-2,5`.
pub fn format(cpus: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    parts.join(",")
}
