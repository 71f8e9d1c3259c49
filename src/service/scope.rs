//! Which CPUs a client may program: the cpuset of its cgroup, which Slurm and container
//! runtimes set and the user cannot change (unlike the affinity mask). cgroup v1 (a `cpuset`
//! hierarchy: `cpuset.effective_cpus`, else `cpuset.cpus`) and v2 (`cpuset.cpus.effective` of
//! the nearest cgroup that has the controller), found through this process's mountinfo
//! (kernel Documentation/admin-guide/cgroup-v1/cpusets.rst and cgroup-v2.rst).

use std::path::{Path, PathBuf};

pub use crate::policy::cpulist::{format as format_cpu_list, parse as parse_cpu_list};

/// One line of `/proc/<pid>/cgroup`: `ID:CONTROLLERS:PATH` (v2: `0::PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub controllers: Vec<String>,
    pub path: String,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let controllers = controllers.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect();
            path.starts_with('/').then(|| Membership { controllers, path: path.to_string() })
        })
        .collect()
}

/// A cgroup file system this process sees: v1 with its controllers, or v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub v2: bool,
    pub controllers: Vec<String>,
    /// The cgroup that is the root of this mount (`/` unless a container bound a subtree).
    pub root: String,
    pub mount_point: PathBuf,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup mounts in `/proc/self/mountinfo` text (proc(5): `ID PARENT MAJ:MIN ROOT POINT
/// OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTIONS`).
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (root, point) = (left.get(3)?, left.get(4)?);
            let (fstype, options) = (*right.first()?, right.get(2).copied().unwrap_or(""));
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            let controllers = if v2 { Vec::new() } else { options.split(',').map(str::to_string).collect() };
            Some(CgroupMount { v2, controllers, root: unescape(root), mount_point: PathBuf::from(unescape(point)) })
        })
        .collect()
}

/// The directory of cgroup `path` under `mount`, when the mount shows it.
fn dir_of(mount: &CgroupMount, path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" { path } else { path.strip_prefix(mount.root.as_str())? };
    let rel = rel.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(if rel.is_empty() { mount.mount_point.clone() } else { mount.mount_point.join(rel) })
}

/// A small kernel text file (procfs, cgroupfs) in as few system calls as it takes: reads of up
/// to 4 KiB until one comes back short. `std::fs::read_to_string` asks for the size first (0
/// for these files) and then reads in steps that start at 32 bytes: a statx and 5 reads for a
/// `/proc/PID/cgroup`, on every connection (strace). Every file read here (`/proc/PID/cgroup`
/// and `status`, cgroupfs's cpuset and controller files) is made by one show call when read
/// from its start (single_open, fs/seq_file.c; kernfs_seq_start, fs/kernfs/file.c, "the same
/// behavior and code as single_open()"): a read returns all of it that fits, so a short read
/// is its end, and the read that would return 0 is not needed.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) if n < chunk.len() => {
                text.extend_from_slice(&chunk[..n]);
                break;
            }
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn read_list(path: &Path) -> Option<Result<Vec<u32>, String>> {
    let text = read_text(path).ok()?;
    Some(parse_cpu_list(&text).ok_or_else(|| format!("{} is not a CPU list", path.display())))
}

/// The cpuset of a process whose cgroup file and this process's mounts are given:
/// Ok(Some(cpus)); Ok(None) when the system has no cpuset controller at all (no scope to
/// apply); Err when it has one but the client's set cannot be read (the caller fails closed).
pub fn cpuset_from(memberships: &[Membership], mounts: &[CgroupMount]) -> Result<Option<Vec<u32>>, String> {
    let v1_mount = mounts.iter().find(|m| !m.v2 && m.controllers.iter().any(|c| c == "cpuset"));
    if let Some(mount) = v1_mount {
        let member = memberships
            .iter()
            .find(|m| m.controllers.iter().any(|c| c == "cpuset"))
            .ok_or("no cpuset line in its cgroup file")?;
        let dir = dir_of(mount, &member.path)
            .ok_or_else(|| format!("cpuset cgroup {} is outside {}", member.path, mount.mount_point.display()))?;
        for file in ["cpuset.effective_cpus", "cpuset.cpus"] {
            if let Some(list) = read_list(&dir.join(file)) {
                return list.map(Some);
            }
        }
        return Err(format!("cannot read the cpuset of {}", dir.display()));
    }
    let Some(mount) = mounts.iter().find(|m| m.v2) else { return Ok(None) };
    let root_has_cpuset = read_text(&mount.mount_point.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|w| w == "cpuset"));
    if !root_has_cpuset {
        return Ok(None);
    }
    let member = memberships.iter().find(|m| m.controllers.is_empty()).ok_or("no cgroup v2 line in its cgroup file")?;
    let mut dir = dir_of(mount, &member.path)
        .ok_or_else(|| format!("cgroup {} is outside {}", member.path, mount.mount_point.display()))?;
    // The controller may not be enabled down to the client's cgroup: the nearest ancestor that
    // has it decides (v2's effective set is inherited).
    loop {
        if let Some(list) = read_list(&dir.join("cpuset.cpus.effective")) {
            return list.map(Some);
        }
        if dir == mount.mount_point || !dir.pop() {
            return Err(format!("no cpuset.cpus.effective above {}", member.path));
        }
    }
}

/// The cgroup file systems this process sees (read once at start: they are mounted at boot).
pub fn cgroup_mounts() -> Vec<CgroupMount> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|t| parse_mountinfo(&t)).unwrap_or_default()
}

/// The cpuset and the cgroup paths of process `pid` (paths for `reset job=ID`). Unless `scoped`
/// (a client whose writes are confined), the set is not read and comes back as Ok(None).
pub fn cpuset_of(pid: i32, mounts: &[CgroupMount], scoped: bool) -> (Result<Option<Vec<u32>>, String>, Vec<String>) {
    if pid <= 0 {
        return (Err(format!("no pid for the client ({pid}): it is in another pid namespace")), Vec::new());
    }
    let text = match read_text(Path::new(&format!("/proc/{pid}/cgroup"))) {
        Ok(t) => t,
        Err(e) => return (Err(format!("cannot read /proc/{pid}/cgroup: {e}")), Vec::new()),
    };
    let memberships = parse_proc_cgroup(&text);
    let paths = memberships.iter().map(|m| m.path.clone()).collect();
    (if scoped { cpuset_from(&memberships, mounts) } else { Ok(None) }, paths)
}

/// Whether one of `paths` is Slurm's cgroup of job `id` (`.../job_<id>` or `.../job_<id>/...`).
pub fn in_job(paths: &[String], id: &str) -> bool {
    let want = format!("job_{id}");
    paths.iter().any(|p| p.split('/').any(|c| c == want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_round_trip_and_refuse_nonsense() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("\n"), Some(vec![]));
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        for bad in ["3-1", "x", "1,,2", "0-99999999", "-1", "1-", "4294967295-0"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad}");
        }
    }

    #[test]
    fn proc_cgroup_lines_of_both_versions() {
        let text = "12:cpuset:/slurm/uid_1000/job_42/step_0\n4:cpu,cpuacct:/x\n0::/user.slice\nbroken\n";
        let m = parse_proc_cgroup(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].controllers, vec!["cpuset"]);
        assert_eq!(m[1].controllers, vec!["cpu", "cpuacct"]);
        assert!(m[2].controllers.is_empty() && m[2].path == "/user.slice");
        assert!(in_job(&[m[0].path.clone()], "42"));
        assert!(!in_job(&[m[0].path.clone()], "4"));
        assert!(!in_job(&["/job_420".into()], "42"));
    }

    #[test]
    fn mountinfo_finds_cgroup_mounts() {
        let text = "30 25 0:26 / /sys/fs/cgroup/cpuset rw,relatime shared:10 - cgroup cgroup rw,cpuset\n\
                    31 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    32 25 0:28 /job\\0401 /mnt/cg\\040x rw - cgroup2 none rw\n\
                    22 1 8:1 / / rw - ext4 /dev/sda1 rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert!(!m[0].v2 && m[0].controllers.contains(&"cpuset".to_string()));
        assert!(m[1].v2 && m[1].mount_point == Path::new("/sys/fs/cgroup/unified"));
        assert_eq!((m[2].root.as_str(), m[2].mount_point.as_path()), ("/job 1", Path::new("/mnt/cg x")));
        assert_eq!(dir_of(&m[2], "/job 1/step"), Some(PathBuf::from("/mnt/cg x/step")));
        assert_eq!(dir_of(&m[2], "/other"), None);
        assert_eq!(dir_of(&m[1], "/a/../b"), None);
    }

    #[test]
    fn no_cpuset_controller_means_no_scope() {
        let mounts = vec![CgroupMount {
            v2: false,
            controllers: vec!["cpu".into()],
            root: "/".into(),
            mount_point: "/nonexistent".into(),
        }];
        assert_eq!(cpuset_from(&[], &mounts), Ok(None));
        assert_eq!(cpuset_from(&[], &[]), Ok(None));
    }

    #[test]
    fn a_v1_cpuset_is_read_from_the_clients_directory() {
        let dir = std::env::temp_dir().join(format!("likwid-scope-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("job_7")).unwrap();
        std::fs::write(dir.join("job_7/cpuset.effective_cpus"), "0,2-3\n").unwrap();
        let mounts = vec![CgroupMount {
            v2: false,
            controllers: vec!["rw".into(), "cpuset".into()],
            root: "/".into(),
            mount_point: dir.clone(),
        }];
        let member = vec![Membership { controllers: vec!["cpuset".into()], path: "/job_7".into() }];
        assert_eq!(cpuset_from(&member, &mounts), Ok(Some(vec![0, 2, 3])));
        let gone = vec![Membership { controllers: vec!["cpuset".into()], path: "/job_8".into() }];
        assert!(cpuset_from(&gone, &mounts).is_err(), "an unreadable cpuset fails closed");
        assert!(cpuset_from(&[], &mounts).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_v2_cpuset_comes_from_the_nearest_cgroup_that_has_the_controller() {
        let dir = std::env::temp_dir().join(format!("likwid-scope-v2-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("slurm/job_9/step_0/user")).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), "cpu io memory cpuset pids\n").unwrap();
        std::fs::write(dir.join("cpuset.cpus.effective"), "0-7\n").unwrap();
        std::fs::write(dir.join("slurm/job_9/cpuset.cpus.effective"), "2-3\n").unwrap();
        let mounts = vec![CgroupMount { v2: true, controllers: vec![], root: "/".into(), mount_point: dir.clone() }];
        let member = |path: &str| vec![Membership { controllers: vec![], path: path.into() }];
        assert_eq!(cpuset_from(&member("/slurm/job_9/step_0/user"), &mounts), Ok(Some(vec![2, 3])));
        assert_eq!(cpuset_from(&member("/"), &mounts), Ok(Some((0..8).collect())));
        assert!(cpuset_from(&[], &mounts).is_err(), "no v2 line: fail closed");
        std::fs::write(dir.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        assert_eq!(cpuset_from(&member("/slurm/job_9"), &mounts), Ok(None), "no cpuset controller: no scope");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_process_has_an_answer() {
        let mounts = cgroup_mounts();
        let (set, paths) = cpuset_of(std::process::id() as i32, &mounts, true);
        assert!(!paths.is_empty());
        if let Ok(Some(cpus)) = set {
            assert!(!cpus.is_empty());
        }
        let (unscoped, same_paths) = cpuset_of(std::process::id() as i32, &mounts, false);
        assert_eq!((unscoped, same_paths), (Ok(None), paths));
        assert!(cpuset_of(0, &mounts, true).0.is_err() && cpuset_of(-3, &mounts, true).0.is_err());
    }
}
