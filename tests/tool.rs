//! The `likwid-access` binary: read/write/check/policy through the real daemon on simulated
//! machines, usage errors, and one `doctor` run per check with that check broken.
#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

use likwid_access::testing::CpuModel;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOOL: &str = env!("CARGO_BIN_EXE_likwid-access");
const DAEMON: &str = env!("CARGO_BIN_EXE_likwid-accessD");
const PERF_CTR0: u32 = 0xC001_0201;
const HWCR: u32 = 0xC001_0015;
const SYSCFG: u32 = 0xC001_0010;

/// A simulated zen4 machine with CPUs 0-3, removed when dropped.
struct Machine {
    dir: Scratch,
}

impl Machine {
    fn new(name: &str) -> Machine {
        let dir = Scratch::new(&format!("tool-{name}"));
        likwid_access::testing::create(&dir, CpuModel::by_name("zen4").unwrap(), &[0, 1, 2, 3]).unwrap();
        Machine { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Writes `text` to `rel`, creating its directories.
    fn put(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn register(&self, cpu: u32, reg: u32) -> u64 {
        let file = std::fs::File::open(self.path(&format!("dev/cpu/{cpu}/msr"))).unwrap();
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, 8 * u64::from(reg)).unwrap();
        u64::from_le_bytes(b)
    }

    fn set_register(&self, cpu: u32, reg: u32, value: u64) {
        let file = std::fs::OpenOptions::new().write(true).open(self.path(&format!("dev/cpu/{cpu}/msr"))).unwrap();
        file.write_all_at(&value.to_le_bytes(), 8 * u64::from(reg)).unwrap();
    }

    /// Everything a healthy machine shows the doctor.
    fn make_healthy(&self) {
        self.put("proc/self/mountinfo", "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n");
        self.put("sys/module/msr/parameters/allow_writes", "on\n");
        self.put("sys/kernel/security/lockdown", "[none] integrity confidentiality\n");
    }

    fn run(&self, args: &[&str]) -> Output {
        run_tool(Some(&self.dir), DAEMON, args)
    }
}

fn run_tool(root: Option<&Path>, daemon: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(TOOL);
    cmd.args(args).env_remove("LIKWID_ACCESS_ROOT").env_remove("LIKWID_ACCESS_DEBUG").env("LIKWID_ACCESSD", daemon);
    if let Some(root) = root {
        cmd.env("LIKWID_ACCESS_ROOT", root);
    }
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn show(out: &Output) -> String {
    format!("exit {:?}\n--- stdout\n{}--- stderr\n{}", out.status.code(), stdout(out), stderr(out))
}

/// The tool failed with exit `code` and exactly one stderr line, `likwid-access: ...`
/// containing `needle`.
fn assert_one_error_line(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{}", show(out));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected\n{}", show(out));
    assert!(lines[0].starts_with("likwid-access: ") && lines[0].contains(needle), "want `{needle}`\n{}", show(out));
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ---- read, write, check, policy ------------------------------------------------------------

#[test]
fn write_then_read_on_selected_cpus_in_hex_decimal_and_bit_fields() {
    let m = Machine::new("rw");
    let out = m.run(&["write", "0xC0010201", "0x123456", "--cpu", "1-2"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        stdout(&out),
        "cpu 1: 0xc0010201 <- 0x123456, now 0x0000000000123456\ncpu 2: 0xc0010201 <- 0x123456, now 0x0000000000123456\n"
    );
    assert_eq!((m.register(1, PERF_CTR0), m.register(0, PERF_CTR0)), (0x12_3456, 0));

    let out = m.run(&["read", "0xC0010201"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        stdout(&out),
        "cpu 0: 0x0000000000000000\ncpu 1: 0x0000000000123456\ncpu 2: 0x0000000000123456\ncpu 3: 0x0000000000000000\n"
    );
    let out = m.run(&["read", &PERF_CTR0.to_string(), "--cpu=2", "--dec"]);
    assert_eq!(stdout(&out), format!("cpu 2: {}\n", 0x12_3456), "{}", show(&out));
    let out = m.run(&["read", "0xC0010201", "--cpu", "1", "--bits", "15:8"]);
    assert_eq!(stdout(&out), "cpu 1: 0x34\n", "{}", show(&out));
}

#[test]
fn write_masks_apply_and_denied_accesses_fail_with_one_line() {
    let m = Machine::new("denied");
    m.set_register(0, HWCR, 0x5);
    let out = m.run(&["write", "0xC0010015", "0xFFFFFFFFFFFFFFFF", "--cpu", "0"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(m.register(0, HWCR), 0x4000_0005, "only IRPerfEn (bit 30) is writable");

    m.set_register(0, SYSCFG, 0x77);
    let out = m.run(&["write", "0xC0010010", "0", "--cpu", "0"]);
    assert_one_error_line(&out, 1, "denied by policy");
    assert_eq!(m.register(0, SYSCFG), 0x77, "denied write left the register alone");

    let out = m.run(&["read", "0xC0000080"]);
    assert_one_error_line(&out, 1, "read of register 0xc0000080 denied by policy");
}

#[test]
fn check_reports_each_cpu_and_refuses_cpus_not_on_the_machine() {
    let m = Machine::new("check");
    let out = m.run(&["check"]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.starts_with("likwid-accessD ") && text.contains("serves CPUs 0-3"), "{text}");
    for cpu in 0..4 {
        assert!(text.contains(&format!("cpu {cpu}: usable\n")), "{text}");
    }
    let out = m.run(&["check", "--cpu", "2,9"]);
    assert_one_error_line(&out, 1, "cpu 9 is not on this machine (CPUs 0-3)");
    let out = m.run(&["read", "0x10", "--cpu", "4"]);
    assert_one_error_line(&out, 1, "cpu 4 is not on this machine");
}

#[test]
fn policy_prints_the_effective_table_in_msr_safe_format() {
    let m = Machine::new("policy");
    let out = m.run(&["policy"]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or("");
    assert!(first.starts_with("# likwid-access policy: built-in table zen4"), "{first}");
    let rules = likwid_access::testing::parse(&text).expect("the output parses as an allowlist");
    assert!(rules.iter().any(|r| r.first <= PERF_CTR0 && PERF_CTR0 <= r.last), "PERF_CTR0 listed");
    let hwcr = text.lines().find(|l| l.starts_with("0xC0010015 ")).expect("HWCR listed");
    assert!(hwcr.contains(" 0x0000000040000000 "), "HWCR write mask after the ceiling: {hwcr}");
    assert!(!text.contains("0xC0000080 "), "EFER is not listed");

    m.put("proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 153\n");
    assert_one_error_line(&m.run(&["policy"]), 1, "unsupported CPU");
}

#[test]
fn usage_errors_exit_2_and_every_command_has_help() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["read"],
        &["read", "0x10", "--bits", "64:0"],
        &["read", "0x10", "--hex", "--dec"],
        &["read", "zz"],
        &["read", "0x100000000"],
        &["write", "0x10"],
        &["write", "0x10", "1", "--cpu", "3-1"],
        &["check", "--frob"],
        &["policy", "extra"],
        &["doctor", "extra"],
        &["sim"],
    ] {
        let out = run_tool(None, "/nonexistent/likwid-accessD", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", show(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{args:?}\n{}", show(&out));
    }
    let out = run_tool(None, DAEMON, &["--help"]);
    assert!(out.status.success() && stdout(&out).starts_with("usage: likwid-access COMMAND"), "{}", show(&out));
    for name in ["read", "write", "check", "policy", "doctor", "sim"] {
        let out = run_tool(None, DAEMON, &[name, "--help"]);
        assert!(out.status.success(), "{name}\n{}", show(&out));
        assert!(stdout(&out).starts_with(&format!("usage: likwid-access {name}")), "{name}\n{}", show(&out));
    }
}

#[test]
fn a_missing_daemon_is_one_line_and_exit_1() {
    let m = Machine::new("nodaemon");
    let out = run_tool(Some(&m.dir), "/nonexistent/likwid-accessD", &["read", "0x10"]);
    assert_one_error_line(&out, 1, "cannot start /nonexistent/likwid-accessD");
}

// ---- doctor ------------------------------------------------------------------------------

/// Runs the doctor; returns its exit code and stdout.
fn doctor(m: &Machine, daemon: &str) -> (Option<i32>, String, Output) {
    let out = run_tool(Some(&m.dir), daemon, &["doctor"]);
    (out.status.code(), stdout(&out), out)
}

/// The doctor's line for `topic` has `status` and contains `needle`, and when it failed, the
/// next line is a fix containing `fix`.
fn assert_finding(text: &str, status: &str, topic: &str, needle: &str, fix: Option<&str>) {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.split_whitespace().collect::<Vec<_>>().join(" ").starts_with(&format!("{status} {topic}")))
        .unwrap_or_else(|| panic!("no `{status} {topic}` line\n{text}"));
    assert!(lines[at].contains(needle), "`{needle}` missing from: {}\n{text}", lines[at]);
    if let Some(fix) = fix {
        let next = lines.get(at + 1).map(|l| l.trim_start()).unwrap_or("");
        assert!(next.starts_with("fix: ") && next.contains(fix), "fix `{fix}` missing after: {}\n{text}", lines[at]);
    }
}

#[test]
fn doctor_passes_on_a_working_simulated_machine() {
    let m = Machine::new("doctor-ok");
    m.make_healthy();
    let (code, text, out) = doctor(&m, DAEMON);
    assert_eq!(code, Some(0), "{}", show(&out));
    assert!(!text.contains("FAIL") && !text.contains("warn "), "{text}");
    assert_finding(&text, "ok", "round trip", "read 0x10 on cpu 0 through likwid-accessD", None);
    assert_finding(&text, "ok", "cpu", "built-in table zen4", None);
    assert!(text.ends_with("access works\n"), "{text}");
}

#[test]
fn doctor_names_a_missing_or_unusable_daemon() {
    let m = Machine::new("doctor-daemon");
    m.make_healthy();
    let (code, text, _) = doctor(&m, "/nonexistent/likwid-accessD");
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "FAIL", "daemon", "/nonexistent/likwid-accessD (from $LIKWID_ACCESSD)", Some("make install"));
    assert_finding(&text, "FAIL", "round trip", "cannot start /nonexistent/likwid-accessD", None);

    let plain = m.path("likwid-accessD");
    std::fs::write(&plain, "not a program").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, text, _) = doctor(&m, plain.to_str().unwrap());
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "FAIL", "daemon", "is not executable for you", Some("chmod 755"));

    // Starts, but is no likwid-accessD: the round trip is the check that notices.
    let impostor = m.path("impostor");
    std::fs::write(&impostor, "#!/bin/sh\nprintf '%64s' 'not a likwid-accessD' >&0\n").unwrap();
    std::fs::set_permissions(&impostor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, text, _) = doctor(&m, impostor.to_str().unwrap());
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "ok", "daemon", "is executable", None);
    assert_finding(&text, "FAIL", "round trip", "likwid-accessD did not start", None);
}

#[test]
fn doctor_wants_setuid_root_or_a_capability_for_real_msr_devices() {
    if !is_root() {
        eprintln!("skipped: needs root to make a character device and a setuid-root copy");
        return;
    }
    let m = Machine::new("doctor-privileges");
    m.make_healthy();
    // A character device (the harmless null device's numbers) makes the tree look like a
    // real machine's, whose msr devices need CAP_SYS_RAWIO.
    let msr0 = m.path("dev/cpu/0/msr");
    std::fs::remove_file(&msr0).unwrap();
    let dev = nix::sys::stat::makedev(1, 3);
    nix::sys::stat::mknod(&msr0, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::from_bits_truncate(0o600), dev)
        .unwrap();
    let copy = m.path("likwid-accessD");
    std::fs::copy(DAEMON, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, text, _) = doctor(&m, copy.to_str().unwrap());
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "FAIL", "privileges", "neither setuid root nor has cap_sys_rawio", Some("chmod u+s"));

    // File capabilities, when setcap is installed: both are needed for root-only devices.
    let setcap = |caps: &str| Command::new("setcap").arg(caps).arg(&copy).status().is_ok_and(|s| s.success());
    if setcap("cap_sys_rawio=ep") {
        let (_, text, _) = doctor(&m, copy.to_str().unwrap());
        assert_finding(&text, "FAIL", "privileges", "not cap_dac_override", Some("setcap cap_dac_override"));
        assert!(setcap("cap_dac_override,cap_sys_rawio=ep"));
        let (_, text, _) = doctor(&m, copy.to_str().unwrap());
        assert_finding(&text, "ok", "privileges", "has cap_dac_override and cap_sys_rawio", None);
        assert!(setcap("-r"));
    }

    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let (_, text, _) = doctor(&m, copy.to_str().unwrap());
    assert_finding(&text, "ok", "privileges", "is setuid root", None);
}

#[test]
fn doctor_finds_a_nosuid_mount() {
    let m = Machine::new("doctor-nosuid");
    m.make_healthy();
    m.put("proc/self/mountinfo", "27 1 254:0 / / rw,nosuid,relatime - ext4 /dev/vda rw\n");
    let (code, text, _) = doctor(&m, DAEMON);
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "FAIL", "nosuid", "is on / mounted nosuid", Some("mount -o remount,suid /"));
}

#[test]
fn doctor_names_the_missing_msr_driver_and_device_files() {
    let m = Machine::new("doctor-driver");
    m.make_healthy();
    std::fs::remove_dir_all(m.path("sys/module/msr")).unwrap();
    std::fs::remove_dir_all(m.path("dev/cpu")).unwrap();
    let (code, text, _) = doctor(&m, DAEMON);
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "FAIL", "msr driver", "not loaded", Some("modprobe msr"));
    assert_finding(&text, "FAIL", "devices", "missing", Some("modprobe msr"));

    let m = Machine::new("doctor-devices");
    m.make_healthy();
    std::fs::remove_file(m.path("dev/cpu/1/msr")).unwrap();
    let (code, text, _) = doctor(&m, DAEMON);
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "FAIL", "devices", "dev/cpu/1/msr", Some("udevadm trigger"));
}

#[test]
fn doctor_checks_allow_writes_and_lockdown() {
    let m = Machine::new("doctor-writes");
    m.make_healthy();
    m.put("sys/module/msr/parameters/allow_writes", "off\n");
    let (code, text, _) = doctor(&m, DAEMON);
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "FAIL", "writes", "msr.allow_writes=off", Some("allow_writes"));

    m.put("sys/module/msr/parameters/allow_writes", "default\n");
    let (code, text, _) = doctor(&m, DAEMON);
    assert_eq!(code, Some(0), "a warning is not a failure\n{text}");
    assert_finding(&text, "warn", "writes", "taints", Some("allow_writes"));

    m.put("sys/module/msr/parameters/allow_writes", "on\n");
    m.put("sys/kernel/security/lockdown", "none [integrity] confidentiality\n");
    let (code, text, _) = doctor(&m, DAEMON);
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "FAIL", "lockdown", "lockdown is `integrity`", Some("Secure Boot"));
}

#[test]
fn doctor_names_the_lock_file_owner() {
    let m = Machine::new("doctor-lock");
    m.make_healthy();
    let lock = m.path("var/run/likwid.lock");
    std::fs::write(&lock, "").unwrap();
    let (code, text, _) = doctor(&m, DAEMON);
    assert_eq!(code, Some(0), "one's own lock file does not lock one out\n{text}");
    assert_finding(&text, "ok", "lock file", "is yours", None);

    if is_root() {
        nix::unistd::chown(&lock, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    } else {
        std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let (code, text, _) = doctor(&m, DAEMON);
    assert_eq!(code, Some(1), "{text}");
    let needle = if is_root() { "is held by" } else { "not readable by you" };
    assert_finding(&text, "FAIL", "lock file", needle, Some("rm "));
    assert_finding(&text, "FAIL", "round trip", "likwid.lock", None);
}

#[test]
fn doctor_names_an_unsupported_cpu() {
    let m = Machine::new("doctor-cpu");
    m.make_healthy();
    m.put("proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 153\n");
    let (code, text, _) = doctor(&m, DAEMON);
    assert_eq!(code, Some(1), "{text}");
    assert_finding(&text, "FAIL", "cpu", "unsupported CPU (GenuineIntel family 0x6 model 0x99)", Some("zen4"));
}

/// On a machine without the msr driver (like the development VM), the doctor says so and
/// names the fix.
#[test]
fn doctor_on_this_machine_names_a_missing_msr_driver() {
    if Path::new("/sys/module/msr").exists() || Path::new("/dev/cpu/0/msr").exists() {
        eprintln!("skipped: the msr driver is loaded here");
        return;
    }
    let out = run_tool(None, DAEMON, &["doctor"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_finding(&text, "FAIL", "msr driver", "not loaded", Some("modprobe msr"));
}

/// Some line of the doctor's has `status topic` and contains `needle`, and when `fix` is given,
/// the line after it is a fix containing it.
fn assert_any_finding(text: &str, status: &str, topic: &str, needle: &str, fix: Option<&str>) {
    let lines: Vec<&str> = text.lines().collect();
    let squeezed = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let at = lines
        .iter()
        .position(|l| squeezed(l).starts_with(&format!("{status} {topic} ")) && l.contains(needle))
        .unwrap_or_else(|| panic!("no `{status} {topic}` line with `{needle}`\n{text}"));
    if let Some(fix) = fix {
        let next = lines.get(at + 1).map(|l| l.trim_start()).unwrap_or("");
        assert!(next.starts_with("fix: ") && next.contains(fix), "fix `{fix}` missing after: {}\n{text}", lines[at]);
    }
}

/// The doctor's LIKWID lines against the LIKWIDs really installed here (Debian's 5.2.2 in /usr,
/// LIKWID 5.5.1 in /opt/likwid-5.5.1), first with our daemon first on PATH, then without.
#[test]
fn doctor_lists_each_installed_likwid_and_the_daemon_it_would_start() {
    let debian = Path::new("/usr/bin/likwid-perfctr").is_file() && Path::new("/usr/sbin/likwid-accessD").is_file();
    let opt55 = Path::new("/opt/likwid-5.5.1/bin/likwid-perfctr").is_file();
    let cfgs = ["/etc/likwid.cfg", "/opt/likwid-5.5.1/etc/likwid.cfg"];
    if !debian && !opt55 || cfgs.iter().any(|c| Path::new(c).exists()) {
        eprintln!("skipped: needs Debian's likwid or /opt/likwid-5.5.1, and no likwid.cfg");
        return;
    }
    let m = Machine::new("doctor-likwid");
    m.make_healthy();
    let bin = m.path("sbin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(DAEMON, bin.join("likwid-accessD")).unwrap();
    let run = |path: &str| {
        let out = Command::new(TOOL)
            .arg("doctor")
            .env_remove("LIKWID_ACCESS_DEBUG")
            .env_remove("LIKWID_CFG_FILE")
            .env("LIKWID_ACCESS_ROOT", &m.dir)
            .env("LIKWID_ACCESSD", DAEMON)
            .env("PATH", path)
            .output()
            .unwrap();
        stdout(&out)
    };
    let ours_first = format!("{}:/usr/bin:/bin:/usr/sbin", bin.display());
    let text = run(&ours_first);
    let ours = format!("starts {}/likwid-accessD (first on PATH): ours", bin.display());
    if debian {
        assert_any_finding(&text, "ok", "likwid", &format!("LIKWID 5.2 at /usr (found via PATH) {ours}"), None);
    }
    if opt55 {
        assert_any_finding(
            &text,
            "ok",
            "likwid",
            &format!("LIKWID 5.5.1 at /opt/likwid-5.5.1 (found via /opt/*) {ours}"),
            None,
        );
    }
    assert!(text.ends_with("access works\n"), "LIKWID notes do not decide whether access works:\n{text}");

    // Nothing of ours on PATH: each falls back to the daemon compiled into its library.
    let text = run("/usr/bin:/bin");
    if debian {
        // Debian bookworm's library has /usr/sbin/likwid/likwid-accessD compiled in, which the
        // package does not install: without /usr/sbin on PATH its tools find no daemon at all.
        let what = "LIKWID 5.2 at /usr (found via PATH) starts none: its compiled-in /usr/sbin/likwid/likwid-accessD \
                    is missing";
        assert_any_finding(&text, "note", "likwid", what, Some("first on the users' PATH"));
    }
    if opt55 {
        let what = "LIKWID 5.5.1 at /opt/likwid-5.5.1 (found via /opt/*) starts /opt/likwid-5.5.1/sbin/likwid-accessD \
                    (its compiled-in path): not ours";
        assert_any_finding(&text, "note", "likwid", what, Some("daemon_path = "));
    }
}
