//! `likwid-access doctor`: checks what access needs, in the order an administrator fixes it,
//! and prints a fix for each problem. Every path honours `LIKWID_ACCESS_ROOT`, so tests build
//! broken and working simulated machines; the daemon is the one the library would launch.

use super::{format_cpu_list, parse_args, Failure};
use crate::client::sessions::{Session, SessionError};
use crate::client::{daemon_path, DAEMON_ENV};
use crate::engine::{policy_for, Op};
use crate::policy::{parse_cpuinfo, Policy, CPU_MODELS};
use crate::root::Root;
use crate::wire::MSR_DEV;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub const HELP: &str = "usage: likwid-access doctor\n\
\n\
Checks the installation and prints a fix for each problem: the daemon is found and\n\
executable, setuid root or with cap_sys_rawio, not on a nosuid file system; the msr driver\n\
is loaded, /dev/cpu/*/msr present, msr.allow_writes and kernel lockdown permit writes; the\n\
lock file; the CPU has a register policy; and a live read through the daemon. Then each\n\
LIKWID installation found (PATH, /usr, /usr/local, /opt/*, $LIKWID_HOME-style variables), its\n\
version and the likwid-accessD it would start; a note with a fix when that is not ours.\n\
With LIKWID_ACCESS_ROOT=DIR every path is looked up under DIR (a simulated machine).\n\
\n\
Exit status: 0 when access works, 1 when a check failed, 2 for a usage error.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
    /// Advice that does not decide whether access works (another LIKWID's daemon).
    Note,
}

struct Finding {
    status: Status,
    topic: &'static str,
    what: String,
    fix: Option<String>,
}

fn finding(status: Status, topic: &'static str, what: impl Into<String>) -> Finding {
    Finding { status, topic, what: what.into(), fix: None }
}

impl Finding {
    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// One CPU's device file and what it is.
struct DeviceFile {
    path: PathBuf,
    kind: Option<std::fs::FileType>,
}

/// What the checks look at.
struct Machine {
    root: Root,
    daemon: PathBuf,
    daemon_source: String,
    cpus: Vec<u32>,
    devices: Vec<DeviceFile>,
}

impl Machine {
    fn new(root: Root) -> Machine {
        let secure = crate::sys::secure_exec();
        let daemon = daemon_path(secure);
        let from_env = !secure && std::env::var_os(DAEMON_ENV).is_some_and(|v| !v.is_empty());
        let daemon_source = if from_env { format!("from ${DAEMON_ENV}") } else { "compiled-in path".to_string() };
        let cpus = machine_cpus(&root);
        let devices = cpus
            .iter()
            .map(|&cpu| {
                let path = root.msr(cpu);
                let kind = std::fs::metadata(&path).ok().map(|m| m.file_type());
                DeviceFile { path, kind }
            })
            .collect();
        Machine { root, daemon, daemon_source, cpus, devices }
    }

    /// `abs` (an absolute path on a real machine) under the root.
    fn path(&self, abs: &str) -> PathBuf {
        self.root.base().join(abs.trim_start_matches('/'))
    }

    /// The kernel's msr device files need CAP_SYS_RAWIO; a simulated machine's register-store
    /// files do not. Without any device file, a real machine will get character devices.
    fn needs_privileges(&self) -> bool {
        let any = self.devices.iter().any(|d| d.kind.is_some());
        self.devices.iter().any(|d| d.kind.is_some_and(|k| k.is_char_device())) || (!any && self.root.is_system())
    }
}

/// The CPU ids in `proc/cpuinfo`, else the `dev/cpu/N` directories.
fn machine_cpus(root: &Root) -> Vec<u32> {
    let mut cpus: Vec<u32> = std::fs::read_to_string(root.cpuinfo())
        .map(|text| {
            text.lines()
                .filter_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == "processor"))
                .filter_map(|(_, v)| v.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if cpus.is_empty() {
        cpus = std::fs::read_dir(root.msr_dir())
            .map(|dir| dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default();
    }
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

fn daemon(m: &Machine) -> Finding {
    let path = m.daemon.display();
    let install =
        format!("run `make install` (PREFIX=... for another prefix), or set {DAEMON_ENV}=/path/to/likwid-accessD");
    match std::fs::metadata(&m.daemon) {
        Err(e) => finding(Status::Fail, "daemon", format!("{path} ({}): {e}", m.daemon_source)).fix(install),
        Ok(meta) if !meta.is_file() => {
            finding(Status::Fail, "daemon", format!("{path} ({}) is not a regular file", m.daemon_source)).fix(install)
        }
        Ok(_) if nix::unistd::access(&m.daemon, nix::unistd::AccessFlags::X_OK).is_err() => {
            finding(Status::Fail, "daemon", format!("{path} ({}) is not executable for you", m.daemon_source))
                .fix(format!("chmod 755 {path}"))
        }
        Ok(_) => finding(Status::Ok, "daemon", format!("{path} ({}) is executable", m.daemon_source)),
    }
}

/// The capabilities `getcap FILE` lists in both the effective and permitted sets; None when
/// getcap is not installed.
fn file_capabilities(path: &Path) -> Option<Vec<String>> {
    let out = std::process::Command::new("getcap").arg(path).stderr(std::process::Stdio::null()).output().ok()?;
    Some(effective_capabilities(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `PATH cap_a,cap_b=ep` (libcap 2.4x) or `PATH = cap_a,cap_b+ep` (older); `=ep` with
/// no names means every capability.
fn effective_capabilities(getcap: &str) -> Vec<String> {
    let mut caps = Vec::new();
    for clause in getcap.split_whitespace().skip(1) {
        let Some(at) = clause.find(['=', '+']) else { continue };
        let flags = &clause[at + 1..];
        if !(flags.contains('e') && flags.contains('p')) {
            continue;
        }
        match &clause[..at] {
            "" | "all" => caps.push("all".to_string()),
            names => caps.extend(names.split(',').map(str::to_string)),
        }
    }
    caps
}

/// With the node's service answering, the daemon needs no privileges of its own.
fn served_by_service(topic: &'static str) -> Option<Finding> {
    let what = "not needed: the node's service answers on /run/likwid-access/socket (likwid-accessD --service)";
    crate::client::service_in_use(crate::sys::secure_exec()).then(|| finding(Status::Ok, topic, what))
}

fn privileges(m: &Machine) -> Finding {
    if let Some(ok) = served_by_service("privileges") {
        return ok;
    }
    let Ok(meta) = std::fs::metadata(&m.daemon) else {
        return finding(Status::Skip, "privileges", "no daemon to check");
    };
    let path = m.daemon.display();
    let setuid = meta.mode() & 0o4000 != 0;
    if setuid && meta.uid() == 0 {
        return finding(Status::Ok, "privileges", format!("{path} is setuid root"));
    }
    let caps = file_capabilities(&m.daemon);
    let has = |name: &str| caps.as_ref().is_some_and(|c| c.iter().any(|n| n == name || n == "all"));
    if has("cap_sys_rawio") && has("cap_dac_override") {
        return finding(Status::Ok, "privileges", format!("{path} has cap_dac_override and cap_sys_rawio"));
    }
    if !m.needs_privileges() {
        return finding(
            Status::Ok,
            "privileges",
            format!("not needed: {} holds register-store files (simulated machine)", m.root.msr_dir().display()),
        );
    }
    let fix =
        format!("chown root:root {path} && chmod u+s {path}   (or: setcap cap_dac_override,cap_sys_rawio=ep {path})");
    let owner = if setuid { format!(" (setuid, but owned by uid {}, not root)", meta.uid()) } else { String::new() };
    if has("cap_sys_rawio") {
        return finding(
            Status::Fail,
            "privileges",
            format!("{path} has cap_sys_rawio but not cap_dac_override: it cannot open the root-only msr devices"),
        )
        .fix(fix);
    }
    if caps.is_none() {
        return finding(
            Status::Warn,
            "privileges",
            format!("{path} is not setuid root{owner}; file capabilities unknown (getcap not installed: apt-get install libcap2-bin)"),
        )
        .fix(fix);
    }
    finding(
        Status::Fail,
        "privileges",
        format!(
            "{path} is neither setuid root nor has cap_sys_rawio{owner}: only root can use it to open the msr devices"
        ),
    )
    .fix(fix)
}

/// `\040` and friends in mountinfo fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount (point, options) holding `path`, from mountinfo text: the longest mount point
/// that is a prefix of it (the last one listed wins among equals, as the kernel stacks them).
fn mount_of(mountinfo: &str, path: &Path) -> Option<(PathBuf, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            Some((PathBuf::from(unescape(fields.get(4)?)), fields.get(5)?.to_string()))
        })
        .filter(|(point, _)| path.starts_with(point))
        .fold(None, |best: Option<(PathBuf, String)>, m| match &best {
            Some(b) if b.0.as_os_str().len() > m.0.as_os_str().len() => best,
            _ => Some(m),
        })
}

fn nosuid(m: &Machine) -> Finding {
    if let Some(ok) = served_by_service("nosuid") {
        return ok;
    }
    let info = m.path("/proc/self/mountinfo");
    let Ok(text) = std::fs::read_to_string(&info) else {
        return finding(Status::Skip, "nosuid", format!("cannot read {}", info.display()));
    };
    // The daemon itself, or the nearest directory that exists when it is missing.
    let target = m.daemon.ancestors().find_map(|p| p.canonicalize().ok()).unwrap_or_else(|| PathBuf::from("/"));
    match mount_of(&text, &target) {
        None => finding(Status::Skip, "nosuid", format!("no mount for {} in {}", target.display(), info.display())),
        Some((point, options)) if options.split(',').any(|o| o == "nosuid") => finding(
            Status::Fail,
            "nosuid",
            format!(
                "{} is on {} mounted nosuid: the kernel ignores its setuid bit and file capabilities",
                m.daemon.display(),
                point.display()
            ),
        )
        .fix(format!(
            "install on a file system without nosuid (make install PREFIX=/usr/local), or: mount -o remount,suid {}",
            point.display()
        )),
        Some((point, _)) => {
            finding(Status::Ok, "nosuid", format!("{} allows setuid and capabilities", point.display()))
        }
    }
}

fn driver(m: &Machine) -> Finding {
    let module = m.path("/sys/module/msr");
    if module.exists() {
        finding(Status::Ok, "msr driver", format!("loaded ({})", module.display()))
    } else if m.devices.iter().any(|d| d.kind.is_some()) {
        finding(Status::Ok, "msr driver", format!("device files present under {}", m.root.msr_dir().display()))
    } else {
        finding(
            Status::Fail,
            "msr driver",
            format!("not loaded: no {} and no {}/*/msr", module.display(), m.root.msr_dir().display()),
        )
        .fix("modprobe msr   (to load it at every boot: echo msr > /etc/modules-load.d/msr.conf)")
    }
}

fn devices(m: &Machine) -> Finding {
    if m.cpus.is_empty() {
        return finding(Status::Fail, "devices", format!("no CPUs listed in {}", m.root.cpuinfo().display()));
    }
    let missing: Vec<&DeviceFile> = m.devices.iter().filter(|d| d.kind.is_none()).collect();
    let odd: Vec<&DeviceFile> =
        m.devices.iter().filter(|d| d.kind.is_some_and(|k| !k.is_char_device() && !k.is_file())).collect();
    let list = |files: &[&DeviceFile]| {
        let mut names: Vec<String> = files.iter().take(3).map(|d| d.path.display().to_string()).collect();
        if files.len() > 3 {
            names.push(format!("and {} more", files.len() - 3));
        }
        names.join(", ")
    };
    if !missing.is_empty() {
        let fix = if m.path("/sys/module/msr").exists() {
            "the driver is loaded but the device nodes are missing: udevadm trigger --subsystem-match=msr"
        } else {
            "modprobe msr"
        };
        return finding(Status::Fail, "devices", format!("missing {}", list(&missing))).fix(fix);
    }
    if !odd.is_empty() {
        return finding(Status::Fail, "devices", format!("neither msr devices nor register stores: {}", list(&odd)))
            .fix("remove them and load the msr driver: modprobe msr");
    }
    let kind = if m.devices.iter().all(|d| d.kind.is_some_and(|k| k.is_char_device())) {
        "msr character devices"
    } else {
        "register-store files (simulated machine)"
    };
    let dir = m.root.msr_dir();
    finding(Status::Ok, "devices", format!("{}/{{{}}}/msr: {kind}", dir.display(), format_cpu_list(&m.cpus)))
}

fn allow_writes(m: &Machine) -> Finding {
    let param = m.path("/sys/module/msr/parameters/allow_writes");
    let fix = format!("echo on > {}   (at boot: msr.allow_writes=on on the kernel command line)", param.display());
    match std::fs::read_to_string(&param).map(|s| s.trim().to_string()) {
        Ok(v) if v == "on" => finding(Status::Ok, "writes", "msr.allow_writes=on"),
        Ok(v) if v == "off" => {
            finding(Status::Fail, "writes", "msr.allow_writes=off: the kernel refuses every MSR write").fix(fix)
        }
        Ok(v) => finding(
            Status::Warn,
            "writes",
            format!("msr.allow_writes={v}: writes work, but the kernel logs each one and taints itself"),
        )
        .fix(fix),
        // The parameter is root-only (0600, arch/x86/kernel/msr.c): unreadable is not absent.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => finding(
            Status::Skip,
            "writes",
            format!("cannot read {} (root only): run likwid-access doctor as root to check it", param.display()),
        ),
        Err(_) if m.path("/sys/module/msr").exists() => {
            finding(Status::Ok, "writes", "no msr.allow_writes filter in this kernel (before 5.9)")
        }
        Err(_) => finding(Status::Skip, "writes", format!("no {} (msr driver not loaded)", param.display())),
    }
}

fn lockdown(m: &Machine) -> Finding {
    let file = m.path("/sys/kernel/security/lockdown");
    let Ok(text) = std::fs::read_to_string(&file) else {
        return finding(
            Status::Warn,
            "lockdown",
            format!("cannot tell: no {} (securityfs not mounted?)", file.display()),
        )
        .fix("mount -t securityfs securityfs /sys/kernel/security, then run likwid-access doctor again");
    };
    let active = text.split_whitespace().find_map(|w| w.strip_prefix('[')?.strip_suffix(']')).unwrap_or("none");
    if active == "none" {
        finding(Status::Ok, "lockdown", "kernel lockdown is off")
    } else {
        finding(
            Status::Fail,
            "lockdown",
            format!("kernel lockdown is `{active}` (Secure Boot): the kernel refuses MSR writes; reads still work"),
        )
        .fix("disable Secure Boot in the firmware setup, or boot with lockdown=none where the kernel permits it")
    }
}

fn lock_file(m: &Machine) -> Finding {
    let path = m.root.lock_file();
    let shown = path.display();
    let uid = nix::unistd::getuid().as_raw();
    let release =
        format!("wait until that job ends, or (administrator) rm {shown} or chown it to the user who measures");
    match std::fs::File::open(&path).and_then(|f| f.metadata()) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            finding(Status::Ok, "lock file", format!("no {shown}: access is not locked"))
        }
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            finding(Status::Fail, "lock file", format!("{shown} is not readable by you, which locks you out"))
                .fix(release)
        }
        Err(e) => finding(Status::Warn, "lock file", format!("{shown}: {e} (LIKWID treats that as unlocked)")),
        Ok(meta) if meta.uid() == uid => {
            finding(Status::Ok, "lock file", format!("{shown} is yours (uid {uid}): only you may measure"))
        }
        Ok(meta) => {
            let owner = nix::unistd::User::from_uid(meta.uid().into())
                .ok()
                .flatten()
                .map_or_else(|| format!("uid {}", meta.uid()), |u| format!("{} (uid {})", u.name, meta.uid()));
            finding(
                Status::Fail,
                "lock file",
                format!("{shown} is held by {owner}: access is refused to everyone else, root included"),
            )
            .fix(release)
        }
    }
}

fn cpu(m: &Machine) -> (Finding, Option<Policy>) {
    let identity = std::fs::read_to_string(m.root.cpuinfo()).ok().and_then(|t| parse_cpuinfo(&t));
    match policy_for(&m.root) {
        Ok(policy) => {
            let id = identity.map_or_else(|| "this CPU".to_string(), |id| id.to_string());
            (finding(Status::Ok, "cpu", format!("{id}: {}", policy.source)), Some(policy))
        }
        Err(e) => {
            let names: Vec<&str> = CPU_MODELS.iter().map(|c| c.name).collect();
            let fix = format!(
                "the built-in tables cover {}; for another CPU an administrator installs a site allowlist (likwid-accessD(8))",
                names.join(", ")
            );
            (finding(Status::Fail, "cpu", e.message).fix(fix), None)
        }
    }
}

/// A real read through a daemon the library's way: the proof that access works.
fn round_trip(policy: Option<&Policy>) -> Finding {
    let mut session = match Session::start() {
        Ok(s) => s,
        Err(e) => {
            return finding(Status::Fail, "round trip", format!("likwid-accessD did not serve: {}", e.message))
                .fix("fix the problems above first, if any; otherwise the message names the cause")
        }
    };
    const TSC: u32 = 0x10;
    let reg = match policy {
        Some(p) if !p.may_read(TSC) => p.rules().first().map_or(TSC, |r| r.first),
        _ => TSC,
    };
    let cpu = session.cpus().first().copied().unwrap_or(0);
    let pid = session.pid();
    let result = session.access(cpu, MSR_DEV, reg, Op::Read);
    session.close();
    match result {
        Ok(_) => {
            finding(Status::Ok, "round trip", format!("read {reg:#x} on cpu {cpu} through likwid-accessD (pid {pid})"))
        }
        Err(e) => finding(
            Status::Fail,
            "round trip",
            format!("read {reg:#x} on cpu {cpu} through likwid-accessD (pid {pid}): {}", SessionError::Client(e)),
        ),
    }
}

/// Each LIKWID installed here and the daemon it would start: ours, or a note how to make it so.
fn likwid_installs(m: &Machine) -> Vec<Finding> {
    let installs = super::likwid_installs::find();
    if installs.is_empty() {
        return vec![finding(
            Status::Skip,
            "likwid",
            "no LIKWID installation found (PATH, /usr, /usr/local, /opt, $LIKWID_HOME)",
        )];
    }
    installs
        .iter()
        .map(|i| {
            let head = format!("LIKWID {} at {} (found via {})", i.version, i.prefix.display(), i.found_by);
            match &i.daemon {
                Ok((d, why)) if super::likwid_installs::is_ours(d, &m.daemon) => {
                    finding(Status::Ok, "likwid", format!("{head} starts {} ({why}): ours", d.display()))
                }
                Ok((d, why)) => {
                    finding(Status::Note, "likwid", format!("{head} starts {} ({why}): not ours", d.display()))
                        .fix(super::likwid_installs::fix(i, &m.daemon))
                }
                Err(why) => finding(Status::Note, "likwid", format!("{head} starts {why}"))
                    .fix(super::likwid_installs::fix(i, &m.daemon)),
            }
        })
        .collect()
}

fn label(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
        Status::Skip => "skip",
        Status::Note => "note",
    }
}

pub fn run(args: &[String]) -> Result<(), Failure> {
    parse_args(args, &[], &[], 0)?;
    let m = Machine::new(Root::from_env(crate::sys::secure_exec()));
    let where_ = if m.root.is_system() { "this machine".to_string() } else { m.root.base().display().to_string() };
    println!("likwid-access doctor: {where_}");
    let (cpu_finding, policy) = cpu(&m);
    let mut findings = vec![
        daemon(&m),
        privileges(&m),
        nosuid(&m),
        driver(&m),
        devices(&m),
        allow_writes(&m),
        lockdown(&m),
        lock_file(&m),
        cpu_finding,
        round_trip(policy.as_ref()),
    ];
    findings.extend(likwid_installs(&m));
    for f in &findings {
        println!("{:<5} {:<11} {}", label(f.status), f.topic, f.what);
        if let Some(fix) = &f.fix {
            println!("{:<17} fix: {fix}", "");
        }
    }
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    match (count(Status::Fail), count(Status::Warn)) {
        (0, 0) => println!("access works"),
        (0, w) => println!("access works ({w} warning(s) above)"),
        (n, _) => return Err(Failure::Failed(format!("access does not work: {n} problem(s), fixes above"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
        40 27 0:50 / /opt/my\\040tools rw,nosuid,nodev - tmpfs tmpfs rw\n\
        41 27 0:51 / /opt rw,relatime - tmpfs tmpfs rw\n";

    #[test]
    fn getcap_output_in_old_and_new_formats() {
        let new = effective_capabilities("/usr/sbin/likwid-accessD cap_dac_override,cap_sys_rawio=ep\n");
        assert_eq!(new, vec!["cap_dac_override", "cap_sys_rawio"]);
        assert_eq!(effective_capabilities("/x = cap_sys_rawio+ep\n"), vec!["cap_sys_rawio"]);
        assert_eq!(effective_capabilities("/x cap_sys_rawio=p\n"), Vec::<String>::new());
        assert_eq!(effective_capabilities("/x =ep\n"), vec!["all"]);
        assert_eq!(effective_capabilities(""), Vec::<String>::new());
    }

    #[test]
    fn the_longest_mount_point_holds_a_path() {
        let (point, options) = mount_of(MOUNTINFO, Path::new("/opt/my tools/sbin/likwid-accessD")).unwrap();
        assert_eq!(point, Path::new("/opt/my tools"));
        assert!(options.contains("nosuid"));
        assert_eq!(mount_of(MOUNTINFO, Path::new("/opt/other")).unwrap().0, Path::new("/opt"));
        assert_eq!(mount_of(MOUNTINFO, Path::new("/usr/sbin/x")).unwrap().0, Path::new("/"));
    }
}
