//! The core's decisions on a simulated Zen 4: who may write where, CPU ownership, the journal
//! and restores; sessions served at once on threads of their own (`concurrent.rs`). The socket
//! side is exercised by tests/service.

use super::config::{Access, Reads};
use super::core::{self, Client, Core, End, Filter, Rights};
use super::session::Session;
use crate::engine::Engine;
use crate::lock::LockWatch;
use crate::policy::pci::Numbering;
use crate::policy::{CpuModel, Policy};
use crate::root::Root;
use crate::wire::{self, Record};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

const CTR0: u32 = 0xC001_0201;
const TSC: u32 = 0x10;

pub(super) struct Machine {
    pub dir: PathBuf,
    pub core: Mutex<Core>,
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn machine(name: &str) -> Machine {
    let dir = std::env::temp_dir().join(format!("likwid-service-core-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    crate::sim::create(&dir, CpuModel::by_name("zen4").unwrap(), &[0, 1]).unwrap();
    std::fs::create_dir_all(dir.join("journal")).unwrap();
    let engine = Engine::open(&Root::new(&dir), 0, Numbering::Likwid52).unwrap();
    let core = Mutex::new(Core::new(engine, dir.join("journal")));
    Machine { dir, core }
}

impl Machine {
    pub fn core(&self) -> MutexGuard<'_, Core> {
        core::lock(&self.core)
    }

    pub fn open(&self, client: Client) -> Session {
        self.core().open(client)
    }

    pub fn client(&self, uid: u32, access: Access, cpuset: Option<&[u32]>) -> Client {
        self.client_with(uid, access, cpuset, Reads::Own, None)
    }

    fn client_with(
        &self,
        uid: u32,
        access: Access,
        cpuset: Option<&[u32]>,
        reads: Reads,
        allowlist: Option<Policy>,
    ) -> Client {
        Client {
            uid,
            pid: 4000 + uid as i32,
            rights: Arc::new(Rights::new(access, allowlist, cpuset.map(|c| c.iter().copied().collect()), reads)),
            cgroups: vec![format!("/slurm/uid_{uid}/job_{uid}0/step_0")],
            numbering: Numbering::Likwid52,
            lock: LockWatch::for_client(self.dir.join("var/run/likwid.lock"), uid),
            stream: None,
            via: "test",
        }
    }

    pub fn write(&self, s: &mut Session, cpu: u32, reg: u32, value: u64) -> i32 {
        let req = Record::request(wire::Kind::Write, cpu, wire::MSR_DEV, reg, value);
        s.answer(&self.core, &req).expect("live session").errorcode
    }

    pub fn read(&self, s: &mut Session, cpu: u32, reg: u32) -> (i32, u64) {
        let reply = s.answer(&self.core, &Record::request(wire::Kind::Read, cpu, wire::MSR_DEV, reg, 0)).unwrap();
        (reply.errorcode, reply.data)
    }

    pub fn register(&self, cpu: u32, reg: u32) -> u64 {
        self.core().engine().read(cpu, wire::MSR_DEV, reg).unwrap()
    }

    pub fn journal_lines(&self) -> usize {
        std::fs::read_dir(self.dir.join("journal"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().lines().count() - 1)
            .sum()
    }
}

#[test]
fn a_second_session_gets_busy_until_the_first_ends_and_restores() {
    let m = machine("busy");
    let mut a = m.open(m.client(1000, Access::ReadWrite, None));
    let mut b = m.open(m.client(1001, Access::ReadWrite, None));
    assert_eq!(m.write(&mut a, 0, CTR0, 0x61), wire::ERR_NOERROR);
    assert_eq!(m.write(&mut b, 0, CTR0, 0x71), wire::ERR_DAEMONBUSY, "cpu 0 is a's");
    assert_eq!(m.register(0, CTR0), 0x61, "the busy write changed nothing");
    assert_eq!(m.read(&mut b, 0, CTR0), (wire::ERR_NOERROR, 0x61), "reads take no CPU");
    assert_eq!(m.write(&mut b, 1, CTR0, 0x72), wire::ERR_NOERROR, "cpu 1 is free");
    assert_eq!(m.core().status().len(), 2);
    assert_eq!(m.core().end(a.id, End::Restore), Some(1));
    assert_eq!(m.register(0, CTR0), 0, "a's register restored");
    assert_eq!(m.write(&mut b, 0, CTR0, 0x73), wire::ERR_NOERROR, "cpu 0 free once a ended");
    assert_eq!(m.core().end(b.id, End::Exit), Some(0));
    assert_eq!((m.register(0, CTR0), m.register(1, CTR0)), (0x73, 0x72), "EXIT keeps");
    assert_eq!(m.journal_lines(), 0, "journals removed with their sessions");
    assert_eq!(a.answer(&m.core, &Record::default()), None, "an ended session is gone");
}

#[test]
fn scope_and_access_refuse_with_restreg() {
    let m = machine("scope");
    let mut confined = m.open(m.client(1000, Access::ReadWrite, Some(&[0])));
    assert_eq!(m.write(&mut confined, 0, CTR0, 1), wire::ERR_NOERROR);
    assert_eq!(m.write(&mut confined, 1, CTR0, 1), wire::ERR_RESTREG);
    assert_eq!(m.read(&mut confined, 1, CTR0).0, wire::ERR_RESTREG, "reads own");
    let any = m.client_with(1001, Access::Read, Some(&[0]), Reads::Any, None);
    let mut reader = m.open(any);
    assert_eq!(m.read(&mut reader, 1, CTR0).0, wire::ERR_NOERROR, "reads any");
    assert_eq!(m.write(&mut reader, 0, CTR0, 2), wire::ERR_RESTREG, "read access only");
    let mut unknown = m.open(m.client(1002, Access::ReadWrite, Some(&[])));
    assert_eq!(m.write(&mut unknown, 1, CTR0, 3), wire::ERR_RESTREG, "an unknown cpuset fails closed");
    assert_eq!(m.register(1, CTR0), 0);
    let check = Record::request(wire::Kind::Check, 1, wire::MSR_DEV, 0, 0);
    assert_eq!(unknown.answer(&m.core, &check).unwrap().errorcode, wire::ERR_NOERROR, "checks are not scoped");
}

#[test]
fn a_refused_write_is_journaled_once() {
    let m = machine("journal");
    let mut s = m.open(m.client(1000, Access::ReadWrite, None));
    for value in 1..100 {
        assert_eq!(m.write(&mut s, 0, TSC, value), wire::ERR_RESTREG, "TSC is read-only");
    }
    assert_eq!(m.journal_lines(), 1, "a client repeating a refused write cannot grow the journal");
    assert_eq!(m.write(&mut s, 0, CTR0, 5), wire::ERR_NOERROR);
    assert_eq!(m.write(&mut s, 0, CTR0, 6), wire::ERR_NOERROR);
    assert_eq!(m.journal_lines(), 2);
    assert_eq!(m.core().end(s.id, End::Restore), Some(1), "only the written register is restored");
    assert_eq!(m.register(0, CTR0), 0);
}

#[test]
fn reset_ends_only_matching_sessions_and_stop_ends_all() {
    let m = machine("reset");
    let mut a = m.open(m.client(1000, Access::ReadWrite, Some(&[0])));
    let mut b = m.open(m.client(1001, Access::ReadWrite, Some(&[1])));
    assert_eq!(m.write(&mut a, 0, CTR0, 0x10), wire::ERR_NOERROR);
    assert_eq!(m.write(&mut b, 1, CTR0, 0x20), wire::ERR_NOERROR);
    assert!(m.core().reset(&Filter { uid: Some(7), ..Filter::default() }).is_empty());
    assert!(
        m.core().reset(&Filter { job: Some("1000".into()), uid: Some(1001), cpus: None }).is_empty(),
        "filters AND"
    );
    let ended = m.core().reset(&Filter { job: Some("10000".into()), ..Filter::default() });
    assert_eq!(ended, vec![format!("ended session {} uid=1000 pid=5000 restored=1", a.id)]);
    assert_eq!((m.register(0, CTR0), m.register(1, CTR0)), (0, 0x20));
    assert_eq!(m.core().stop(), 1);
    assert_eq!(m.register(1, CTR0), 0, "SIGTERM restores");
    assert_eq!(b.answer(&m.core, &Record::default()), None);
}

#[test]
fn a_rule_allowlist_narrows_the_policy() {
    let m = machine("allow");
    let allowlist = Policy::new("test", "0xC0010201 0xFF\n").unwrap();
    let client = m.client_with(1000, Access::ReadWrite, None, Reads::Own, Some(allowlist));
    let mut s = m.open(client);
    let engine_write = m.core().engine().write(0, wire::MSR_DEV, CTR0, 0xAB00);
    assert!(engine_write.is_ok());
    assert_eq!(m.write(&mut s, 0, CTR0, 0x1234), wire::ERR_NOERROR);
    assert_eq!(m.register(0, CTR0), 0xAB34, "only the allowlist's bits changed");
    assert_eq!(m.read(&mut s, 0, TSC).0, wire::ERR_RESTREG, "not in the allowlist");
    assert_eq!(m.core().end(s.id, End::Restore), Some(1));
    assert_eq!(m.register(0, CTR0), 0xAB00);
}

#[test]
fn the_lock_file_is_judged_for_each_client() {
    if !nix::unistd::getuid().is_root() {
        return; // chown needs root; `make test` runs as root
    }
    let m = machine("lock");
    let lock = m.dir.join("var/run/likwid.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, b"").unwrap();
    std::os::unix::fs::chown(&lock, Some(1000), None).unwrap();
    std::fs::set_permissions(&lock, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut owner = m.open(m.client(1000, Access::ReadWrite, None));
    let mut other = m.open(m.client(1001, Access::ReadWrite, None));
    let mut root = m.open(m.client(0, Access::ReadWrite, None));
    assert_eq!(m.write(&mut owner, 0, CTR0, 1), wire::ERR_NOERROR, "the lock's owner measures");
    assert_eq!(m.write(&mut other, 1, CTR0, 1), wire::ERR_LOCKED);
    assert_eq!(m.read(&mut root, 1, CTR0).0, wire::ERR_LOCKED, "root is not exempt, as in LIKWID");
    // Each session's engine judges with its own client's watch however the sessions take
    // turns; a restore at a session's end with that client's.
    for _ in 0..2 {
        assert_eq!(m.read(&mut owner, 0, CTR0).0, wire::ERR_NOERROR);
        assert_eq!(m.read(&mut other, 1, CTR0).0, wire::ERR_LOCKED);
        assert_eq!(m.read(&mut owner, 0, CTR0).0, wire::ERR_NOERROR);
    }
    assert_eq!(m.core().end(owner.id, End::Restore), Some(1), "restored under the owner's own watch");
    assert_eq!(m.read(&mut other, 1, CTR0).0, wire::ERR_LOCKED);
    let mut owner_again = m.open(m.client(1000, Access::ReadWrite, None));
    assert_eq!(m.read(&mut owner_again, 0, CTR0).0, wire::ERR_NOERROR, "a new session of the owner");
    assert_eq!(m.core().end(other.id, End::Restore), Some(0));
    assert_eq!(m.read(&mut root, 1, CTR0).0, wire::ERR_LOCKED);
    assert_eq!(m.read(&mut owner_again, 0, CTR0).0, wire::ERR_NOERROR);
}

#[test]
fn sessions_of_one_process_share_its_cpus() {
    // LIKWID 5 starts a daemon per thread: several sessions of one pid program one machine.
    let m = machine("process");
    let mut first = m.open(m.client(1000, Access::ReadWrite, None));
    let mut second = m.open(m.client(1000, Access::ReadWrite, None));
    let mut other_client = m.client(1000, Access::ReadWrite, None);
    other_client.pid += 1;
    let mut other = m.open(other_client);
    assert_eq!(m.write(&mut first, 0, CTR0, 1), wire::ERR_NOERROR);
    assert_eq!(m.write(&mut second, 0, CTR0 - 1, 2), wire::ERR_NOERROR, "same process: shared");
    assert_eq!(m.core().end(first.id, End::Exit), Some(0));
    assert_eq!(m.write(&mut other, 0, CTR0, 3), wire::ERR_DAEMONBUSY, "still held by the process's second session");
    assert_eq!(m.core().end(second.id, End::Exit), Some(0));
    assert_eq!(m.write(&mut other, 0, CTR0, 3), wire::ERR_NOERROR, "free once the process's last session ended");
}
