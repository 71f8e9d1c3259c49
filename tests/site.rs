//! The administrator's site policy in `<root>/etc/likwid-access/`: it replaces the built-in
//! table, its read-only switch denies every write, and it is refused (the daemon then does not
//! serve) unless root controls the files.
#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

use likwid_access::testing::AccessError;
use likwid_access::testing::CpuModel;
use likwid_access::testing::Numbering;
use likwid_access::testing::Root;
use likwid_access::testing::{policy_for, Engine};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const CTL0: u32 = 0xC001_0200;
const CTR0: u32 = 0xC001_0201;
const SYSCFG: u32 = 0xC001_0010;

struct Machine(Scratch);

impl Machine {
    fn new(name: &str) -> Machine {
        let dir = Scratch::new(&format!("site-{name}"));
        likwid_access::testing::create(&dir, CpuModel::by_name("zen4").unwrap(), &[0, 1]).unwrap();
        std::fs::create_dir_all(dir.join("etc/likwid-access")).unwrap();
        std::fs::set_permissions(dir.join("etc/likwid-access"), std::fs::Permissions::from_mode(0o755)).unwrap();
        Machine(dir)
    }

    fn site(&self, file: &str) -> PathBuf {
        self.0.join("etc/likwid-access").join(file)
    }

    fn install(&self, file: &str, text: &str, mode: u32) {
        std::fs::write(self.site(file), text).unwrap();
        std::fs::set_permissions(self.site(file), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn root(&self) -> Root {
        Root::new(&self.0)
    }

    fn engine(&self) -> Engine {
        Engine::open(&self.root(), nix::unistd::getuid().as_raw(), Numbering::Likwid52).unwrap()
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn site_allowlist_replaces_the_builtin_table_but_not_the_ceiling() {
    if !is_root() {
        eprintln!("skipped: site files must be root-owned");
        return;
    }
    let m = Machine::new("replace");
    m.install("msr-allowlist", "# site\n0xC0010201 0xFFFFFFFFFFFF\n0xC0010010 0xFFFFFFFFFFFFFFFF\n", 0o644);
    let policy = policy_for(&m.root()).unwrap();
    assert!(policy.source.contains("site allowlist"), "{}", policy.source);
    let mut e = m.engine();
    e.write(0, 0, CTR0, 0x1_0000_0005).unwrap();
    assert_eq!(e.read(0, 0, CTR0).unwrap(), 0x1_0000_0005);
    assert_eq!(e.read(0, 0, CTL0), Err(AccessError::Denied { reg: CTL0, write: false }), "not in the site list");
    assert_eq!(e.write(0, 0, SYSCFG, 1), Err(AccessError::Denied { reg: SYSCFG, write: true }), "ceiling holds");
}

#[test]
fn read_only_switch_denies_every_write() {
    if !is_root() {
        eprintln!("skipped: site files must be root-owned");
        return;
    }
    let m = Machine::new("readonly");
    m.install("read-only", "", 0o644);
    let mut e = m.engine();
    assert!(e.policy().source.ends_with("read-only"), "{}", e.policy().source);
    assert_eq!(e.write(1, 0, CTR0, 5), Err(AccessError::Denied { reg: CTR0, write: true }));
    assert_eq!(e.read(1, 0, CTR0), Ok(0), "reads still allowed");
}

#[test]
fn site_policy_serves_a_cpu_without_builtin_table() {
    if !is_root() {
        return;
    }
    let m = Machine::new("unknown-cpu");
    let info = std::fs::read_to_string(m.0.join("proc/cpuinfo")).unwrap();
    std::fs::write(m.0.join("proc/cpuinfo"), info.replace("cpu family\t: 25", "cpu family\t: 20")).unwrap();
    assert_eq!(policy_for(&m.root()).unwrap_err().errno, libc::ENOTSUP);
    m.install("msr-allowlist", "0xC0010201 0xFFFFFFFFFFFF\n", 0o600);
    m.engine().write(0, 0, CTR0, 9).unwrap();
}

fn refused(m: &Machine, want: &str) {
    let e = policy_for(&m.root()).unwrap_err();
    assert_eq!(e.errno, libc::EACCES, "{}", e.message);
    assert!(e.message.contains(want), "{}", e.message);
    let e = Engine::open(&m.root(), 0, Numbering::Likwid52).err().expect("no engine on an untrusted site policy");
    assert!(e.message.contains("refused"), "{}", e.message);
}

#[test]
fn untrusted_site_files_are_refused() {
    let m = Machine::new("untrusted");
    m.install("elsewhere", "0xC0010201 0xFFFFFFFFFFFF\n", 0o644);
    std::os::unix::fs::symlink(m.site("elsewhere"), m.site("msr-allowlist")).unwrap();
    refused(&m, "symlink");
    std::fs::remove_file(m.site("msr-allowlist")).unwrap();
    if !is_root() {
        return;
    }
    m.install("msr-allowlist", "0xC0010201 0xFFFFFFFFFFFF\n", 0o664);
    refused(&m, "writable by group or others");
    m.install("read-only", "", 0o646);
    std::fs::set_permissions(m.site("msr-allowlist"), std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(&m, "writable by group or others");
    std::fs::remove_file(m.site("read-only")).unwrap();
    nix::unistd::chown(&m.site("msr-allowlist"), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    refused(&m, "owned by uid 65534");
    nix::unistd::chown(&m.site("msr-allowlist"), Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    std::fs::set_permissions(m.site(""), std::fs::Permissions::from_mode(0o777)).unwrap();
    refused(&m, "writable by group or others");
}

#[test]
fn malformed_site_allowlist_names_its_line() {
    if !is_root() {
        return;
    }
    let m = Machine::new("malformed");
    m.install("msr-allowlist", "0xC0010201 0xFFFFFFFFFFFF\nbogus line here\n", 0o644);
    let e = policy_for(&m.root()).unwrap_err();
    assert_eq!(e.errno, libc::EINVAL);
    assert!(e.message.contains("line 2"), "{}", e.message);
    assert!(Path::new(&m.site("msr-allowlist")).exists());
}
