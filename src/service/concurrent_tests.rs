//! Sessions served at once, each on its own thread, as the service serves its connections:
//! reads run beside another session's writes, and a session that ends (its client gone, an
//! admin reset) restores only its own registers while the others go on.

use super::core::{self, Core, End, Filter};
use super::placement::Placement;
use super::tests::{machine, Machine};
use super::{load::Loaded, ratelimit::RateLimit, serve, Service};
use crate::engine::Engine;
use crate::policy::pci::Numbering;
use crate::root::Root;
use crate::wire::{self, Kind, Record, RECORD_LEN};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const CTR0: u32 = 0xC001_0201;
const ROUNDS: u64 = 2000;

#[test]
fn a_session_reads_and_writes_its_cpu_while_another_writes() {
    let m = machine("concurrent");
    let mut a = m.open(m.client(1000, super::config::Access::ReadWrite, None));
    let mut b = m.open(m.client(1001, super::config::Access::ReadWrite, None));
    assert_eq!(m.write(&mut a, 0, CTR0, 1), wire::ERR_NOERROR, "a programs cpu 0");
    std::thread::scope(|s| {
        s.spawn(|| {
            for v in 1..=ROUNDS {
                assert_eq!(m.write(&mut a, 0, CTR0, v), wire::ERR_NOERROR);
                assert_eq!(m.read(&mut a, 0, CTR0), (wire::ERR_NOERROR, v), "nobody else writes cpu 0");
            }
        });
        s.spawn(|| {
            for v in 1..=ROUNDS {
                let (code, seen) = m.read(&mut b, 0, CTR0);
                assert!(code == wire::ERR_NOERROR && (1..=ROUNDS).contains(&seen), "b reads a's cpu: {code} {seen}");
                assert_eq!(m.write(&mut b, 1, CTR0, 0x1000 + v), wire::ERR_NOERROR);
                assert_eq!(m.read(&mut b, 1, CTR0), (wire::ERR_NOERROR, 0x1000 + v), "nobody else writes cpu 1");
                assert_eq!(m.write(&mut b, 0, CTR0, 7), wire::ERR_DAEMONBUSY, "cpu 0 stays a's");
            }
        });
    });
    assert_eq!((m.register(0, CTR0), m.register(1, CTR0)), (ROUNDS, 0x1000 + ROUNDS));
    assert_eq!(m.journal_lines(), 2, "one original per session and register");
    assert_eq!(m.core().end(a.id, End::Restore), Some(1));
    assert_eq!(m.core().end(b.id, End::Restore), Some(1));
    assert_eq!((m.register(0, CTR0), m.register(1, CTR0)), (0, 0));
}

#[test]
fn a_session_ended_mid_flight_restores_its_own_and_the_other_goes_on() {
    let m: Machine = machine("ending");
    let mut a = m.open(m.client(1000, super::config::Access::ReadWrite, None));
    let mut b = m.open(m.client(1001, super::config::Access::ReadWrite, None));
    let a_id = a.id;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let b_served = s.spawn(|| {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) || n < 100 {
                n += 1;
                assert_eq!(m.write(&mut b, 1, CTR0, n), wire::ERR_NOERROR);
                assert_eq!(m.read(&mut b, 1, CTR0), (wire::ERR_NOERROR, n));
            }
            n
        });
        for v in 1..=500 {
            assert_eq!(m.write(&mut a, 0, CTR0, 0x500 + v), wire::ERR_NOERROR);
        }
        assert_eq!(m.core().end(a_id, End::Restore), Some(1), "a's client is gone");
        done.store(true, Ordering::Relaxed);
        let last = b_served.join().unwrap();
        assert_eq!((m.register(0, CTR0), m.register(1, CTR0)), (0, last), "a restored, b's value stays");
    });
    let read = Record::request(Kind::Read, 0, wire::MSR_DEV, CTR0, 0);
    assert_eq!(a.answer(&m.core, &read), None, "an ended session answers nothing, reads included");
    assert_eq!(m.write(&mut b, 0, CTR0, 9), wire::ERR_NOERROR, "cpu 0 is free for b now");
    assert_eq!(m.core().status().len(), 1);
}

/// A service of the simulated machine in `m`'s directory, for the serve loop.
fn service(m: &Machine) -> Service {
    let engine = Engine::open(&Root::new(&m.dir), 0, Numbering::Likwid52).unwrap();
    Service {
        core: Mutex::new(Core::new(engine, m.dir.join("journal"))),
        config: Mutex::new(Arc::new(Loaded::default())),
        fallback_numbering: (Numbering::Likwid54, String::new()),
        lock_path: m.dir.join("var/run/likwid.lock"),
        cgroup_mounts: Vec::new(),
        slots: Mutex::new(HashMap::new()),
        log: RateLimit::default(),
        greeting: Vec::new(),
        waiting: AtomicUsize::new(0),
        home_cpus: None,
    }
}

fn ask(client: &mut UnixStream, kind: Kind, cpu: u32, value: u64) -> (i32, u64) {
    client.write_all(&Record::request(kind, cpu, wire::MSR_DEV, CTR0, value).encode()).unwrap();
    let mut reply = [0u8; RECORD_LEN];
    client.read_exact(&mut reply).unwrap();
    let reply = Record::decode(&reply);
    (reply.errorcode, reply.data)
}

/// Through the serve loop on socket pairs: a client that dies mid-session (no EXIT) has its
/// register restored while another client writes and reads throughout; an admin reset closes
/// a session whose client keeps reading.
#[test]
fn a_dying_connection_is_restored_and_the_other_is_served_throughout() {
    let m = machine("serve");
    let svc = service(&m);
    let register = |cpu| core::lock(&svc.core).engine().read(cpu, wire::MSR_DEV, CTR0).unwrap();
    let connect = |uid| {
        let (client, server) = UnixStream::pair().unwrap();
        let mut c = m.client(uid, super::config::Access::ReadWrite, None);
        c.stream = Some(Arc::new(server.try_clone().unwrap()));
        let session = core::lock(&svc.core).open(c);
        (client, server, session)
    };
    let (mut a, a_server, a_session) = connect(1000);
    let (mut b, b_server, b_session) = connect(1001);
    let (mut c, c_server, c_session) = connect(1002);
    let done = AtomicBool::new(false);
    let last = std::thread::scope(|s| {
        let serve = |server: UnixStream, session| {
            let svc = &svc;
            s.spawn(move || serve::serve(svc, session, &server, true, &mut Placement::follow(0, None)))
        };
        let (a_served, b_served, c_served) =
            (serve(a_server, a_session), serve(b_server, b_session), serve(c_server, c_session));
        let done = &done;
        let b_client = s.spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) || n < 100 {
                n += 1;
                assert_eq!(ask(&mut b, Kind::Write, 1, n), (wire::ERR_NOERROR, 0));
                assert_eq!(ask(&mut b, Kind::Read, 1, 0), (wire::ERR_NOERROR, n));
                let (code, seen) = ask(&mut b, Kind::Read, 0, 0);
                assert!(code == wire::ERR_NOERROR && (seen == 0 || seen > 0x600), "b reads cpu 0: {code} {seen:#x}");
            }
            (n, b)
        });
        for v in 1..=300 {
            assert_eq!(ask(&mut a, Kind::Write, 0, 0x600 + v), (wire::ERR_NOERROR, 0));
        }
        drop(a);
        a_served.join().unwrap();
        assert_eq!(register(0), 0, "a died without EXIT: restored");
        assert_eq!(ask(&mut c, Kind::Read, 1, 0).0, wire::ERR_NOERROR);
        let ended = core::lock(&svc.core).reset(&Filter { uid: Some(1002), ..Filter::default() });
        assert_eq!(ended.len(), 1);
        let _ = c.write_all(&Record::request(Kind::Read, 1, wire::MSR_DEV, CTR0, 0).encode());
        assert_eq!(c.read(&mut [0u8; RECORD_LEN]).unwrap_or(0), 0, "reset closes the session, reads too");
        c_served.join().unwrap();
        done.store(true, Ordering::Relaxed);
        let (last, mut b) = b_client.join().unwrap();
        assert_eq!(register(1), last);
        assert_eq!(ask(&mut b, Kind::Write, 0, 0x77), (wire::ERR_NOERROR, 0), "cpu 0 is free once a is gone");
        b.write_all(&Record::request(Kind::Exit, 0, wire::MSR_DEV, 0, 0).encode()).unwrap();
        b_served.join().unwrap();
        last
    });
    assert_eq!((register(0), register(1)), (0x77, last), "EXIT keeps b's values");
    assert!(core::lock(&svc.core).status().is_empty());
    assert_eq!(m.journal_lines(), 0, "every journal removed");
}
